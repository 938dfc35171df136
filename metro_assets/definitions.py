"""The code location: every asset, check, job, schedule and sensor, and the resources."""

from dagster import AssetSelection, Definitions, RetryPolicy, define_asset_job, map_asset_specs

from metro_assets.assets import settings_tags, with_column_schema
from metro_assets.bandit.assets import build_bandit_assets
from metro_assets.candidates.assets import build_candidate_assets
from metro_assets.errors import SettingError
from metro_assets.embeddings.assets import build_embedding_assets
from metro_assets.features.assets import build_feature_assets
from metro_assets.monitoring.assets import build_monitoring_assets
from metro_assets.monitoring.sensors import drift_retrain
from metro_assets.ranking.assets import build_ranking_assets
from metro_assets.ranking.schedules import build_weekly_retrain
from metro_assets.resources import warehouse_resource
from metro_assets.runs import warehouse_executor
from metro_assets.sequence.assets import build_sequence_assets
from metro_assets.settings import Settings, load_settings
from metro_assets.serving.assets import build_serving_assets
from metro_assets.raw.assets import build_raw_assets

# The daily pipeline's asset groups, upstream first: add a stage by adding its group.
DAILY_PIPELINE_GROUPS = ["features", "candidates", "recommendations", "serving", "monitoring"]


def build_defs(settings: Settings) -> Definitions:
    """All definitions for these settings (partitions follow the start date and scale)."""
    raw_tables = build_raw_assets(settings)
    # One retry for a step that failed for a passing reason (a locked warehouse, a transient I/O error);
    # user errors (bad settings or data) fail at once: they raise Failure(allow_retries=False).
    retry = RetryPolicy(max_retries=1, delay=settings.ops.retry_delay)
    tags = settings_tags(settings)  # which world a run computed, on the record in the UI's run list

    def job(name: str, selection: AssetSelection, description: str, retried: bool = True):
        return define_asset_job(name, selection=selection, description=description,
                                op_retry_policy=retry if retried else None, tags=tags)

    jobs = [
        job("simulate", AssetSelection.assets(raw_tables),
            "Simulate (or import) the retailer's raw tables for a day or a range of days, in one run."),
        job("daily_pipeline", AssetSelection.groups(*DAILY_PIPELINE_GROUPS),
            "Everything computed for a day from the warehouse: features, candidates, recommendations, "
            "the serving snapshot and the drift report (one run per day)."),
        job("retrain", AssetSelection.groups("model", *DAILY_PIPELINE_GROUPS),
            "Train the rankers for a day (every kind; the one that ranks the validation week best serves) and "
            "the uplift learners, then run that day's pipeline."),
        job("evaluate", AssetSelection.groups("evaluation"),
            "Grade a day's recommendations against the week after it (needs raw data up to D+6). "
            "Runs by itself through declarative automation when that week lands."),
        job("sequence", AssetSelection.groups("sequence"),
            "Train SASRec for a day and measure its next-purchase Hit@10 / NDCG@10 against popularity "
            "and buy-again (extra [deep]; without it the run records one line saying so)."),
        # no automatic retry: a study runs for minutes, and its failures are not passing ones
        job("bandit", AssetSelection.groups("bandit"),
            "Drive every policy (Thompson sampling, epsilon-greedy, the weekly batch ranker, random, the "
            "oracle) through the same simulated weeks of a scenario (partition): regret and plots.", retried=False),
    ]

    assets = [
        raw_tables,
        *build_feature_assets(settings),
        *build_embedding_assets(settings),
        *build_candidate_assets(settings),
        *build_ranking_assets(settings),
        *build_serving_assets(settings),
        *build_monitoring_assets(settings),
        *build_sequence_assets(settings),
        *build_bandit_assets(settings),
    ]
    return Definitions(
        # every table asset carries its columns (names, types, descriptions from schema.sql) for the UI
        assets=map_asset_specs(with_column_schema, assets),
        jobs=jobs,
        schedules=[build_weekly_retrain(settings)],
        sensors=[drift_retrain],
        resources={"warehouse": warehouse_resource(settings)},
        # One process per run (docs/ARCHITECTURE.md): the steps share the one writer anyway (pool "warehouse"),
        # and a process per step would re-import the code location for each (~3 s).
        executor=warehouse_executor,  # in-process, and frees the pool slots of runs that died (runs.py)
    )


try:
    _settings = load_settings()
except SettingError as exc:  # one clear line instead of a traceback
    raise SystemExit(f"metro-offers: {exc}") from None

defs = build_defs(_settings)
