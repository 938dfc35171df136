"""The code location: every asset, check, job, schedule and sensor, and the resources."""

from dagster import AssetSelection, Definitions, define_asset_job

from metro_assets.candidates.assets import build_candidate_assets
from metro_assets.features.assets import build_feature_assets
from metro_assets.ranking.assets import build_ranking_assets
from metro_assets.ranking.schedules import build_weekly_retrain
from metro_assets.resources import SettingError, Settings, load_settings, warehouse_resource
from metro_assets.simulation.assets import build_raw_assets

# The daily pipeline's asset groups, upstream first: add a stage by adding its group.
DAILY_PIPELINE_GROUPS = ["features", "candidates", "recommendations"]


def build_defs(settings: Settings) -> Definitions:
    """All definitions for these settings (partitions follow the start date and scale)."""
    raw_tables = build_raw_assets(settings)
    simulate_job = define_asset_job(
        "simulate",
        selection=AssetSelection.assets(raw_tables),
        description="Simulate (or import) the retailer's raw tables for a day or a range of days, in one run.",
    )
    daily_pipeline_job = define_asset_job(
        "daily_pipeline",
        selection=AssetSelection.groups(*DAILY_PIPELINE_GROUPS),
        description="Everything computed for a day from the warehouse: features, candidates, recommendations "
                    "and the serving snapshot (one run per day).",
    )
    retrain_job = define_asset_job(
        "retrain",
        selection=AssetSelection.groups("model", *DAILY_PIPELINE_GROUPS),
        description="Train the ranker for a day (both models, the better serves), then run that day's pipeline.",
    )
    return Definitions(
        assets=[
            raw_tables,
            *build_feature_assets(settings),
            *build_candidate_assets(settings),
            *build_ranking_assets(settings),
        ],
        jobs=[simulate_job, daily_pipeline_job, retrain_job],
        schedules=[build_weekly_retrain(settings)],
        resources={"warehouse": warehouse_resource(settings)},
    )


try:
    _settings = load_settings()
except SettingError as exc:  # one clear line instead of a traceback
    raise SystemExit(f"metro-offers: {exc}") from None

defs = build_defs(_settings)
