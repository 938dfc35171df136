"""Helpers for the monitoring tests: run the pipeline's plain functions for a tiny day."""

import shutil
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from metro_assets.ranking.reasons import reasons_for
from metro_assets.ranking.scoring import offer_items, score_pool, selected_model, top_k
from metro_assets.warehouse import replace_partitions
from metro_assets_tests.conftest import HISTORY_END
from metro_assets_tests.pipeline import features_and_pool, train, writable_copy

TRAIN_DAY = HISTORY_END - timedelta(days=11)  # 2025-09-15
DAY = HISTORY_END - timedelta(days=9)         # 2025-09-17: its label week ends 2025-09-23, inside the history
LATE = HISTORY_END - timedelta(days=3)        # 2025-09-23: its label week runs past the history


def run_day(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Features, candidate pool and recommendations of ``day`` (what daily_pipeline does before monitoring)."""
    features_and_pool(con, day)
    version, model = selected_model(con, day)
    top = top_k(score_pool(con, day, model), 10, items=offer_items(con)).with_columns(run_date=pl.lit(day), model_version=pl.lit(version))
    top = top.with_columns(reasons=reasons_for(con, day, model, top))
    replace_partitions(con, {"recommendations": top}, day, day + timedelta(days=1), column="run_date")


@pytest.fixture(scope="session")
def evaluated_file(tiny_world_file, tmp_path_factory):
    """The tiny history with a model for TRAIN_DAY and the pipeline run for DAY and LATE (read-only template)."""
    path = tmp_path_factory.mktemp("evaluation") / "warehouse.duckdb"
    shutil.copy(tiny_world_file, path)
    with duckdb.connect(str(path)) as con:
        train(con, TRAIN_DAY)
        run_day(con, DAY)
        run_day(con, LATE)
    return path


@pytest.fixture
def con(evaluated_file, tmp_path):
    """A private, writable copy of the evaluated tiny warehouse."""
    with writable_copy(evaluated_file, tmp_path) as con:
        yield con
