"""Helpers for the feature and candidate tests: real Dagster runs of one day."""

from datetime import date

import duckdb
import polars as pl
from dagster import DagsterInstance, materialize
from dagster_duckdb import DuckDBResource

from metro_assets.candidates.assets import build_candidate_assets
from metro_assets.features.assets import build_feature_assets
from metro_assets.settings import load_settings

RUN_DAY = date(2025, 9, 26)  # the tiny run date: the first day after the tiny history
MID_DAY = date(2025, 9, 19)  # a day inside the history: later events exist
DAILY_TABLES = {
    "customer_features": ["customer_id"],
    "offer_features": ["offer_id"],
    "candidate_pool": ["customer_id", "offer_id"],
    "interaction_features": ["customer_id", "offer_id"],
}


def daily_assets():
    settings = load_settings()
    return [*build_feature_assets(settings), *build_candidate_assets(settings)]


def run_day(day: date = RUN_DAY):
    """Materialize features and candidates for ``day`` in one real Dagster run (raises on failure)."""
    settings = load_settings()
    result = materialize(
        daily_assets(),
        partition_key=day.isoformat(),
        resources={"warehouse": DuckDBResource(database=str(settings.warehouse))},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    return result


def pool_metadata(result) -> dict:
    """The candidate_pool materialization's metadata, as plain values."""
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key.to_user_string() == "candidate_pool")
    return {k: v.value for k, v in event.materialization.metadata.items()}


def snapshot(path, day: date) -> dict[str, pl.DataFrame]:
    """Every daily table's rows of ``day``, sorted by key."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            table: con.sql(f"select * from {table} where day = $day", params={"day": day}).pl().sort(keys)
            for table, keys in DAILY_TABLES.items()
        }
    finally:
        con.close()
