"""Helpers for the monitoring tests: run the pipeline's plain functions for a tiny day."""

import shutil
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from metro_assets.candidates.retrieval import write_candidate_pool
from metro_assets.features.daily import write_features
from metro_assets.ranking.scoring import offer_items, score_pool, selected_model, top_k
from metro_assets.ranking.training import model_rows, train_rankers, training_set
from metro_assets.settings import CandidateLimits
from metro_assets.warehouse import replace_partitions
from metro_assets_tests.conftest import HISTORY_END

TRAIN_DAY = HISTORY_END - timedelta(days=11)  # 2025-09-15
DAY = HISTORY_END - timedelta(days=9)         # 2025-09-17: its label week ends 2025-09-23, inside the history
LATE = HISTORY_END - timedelta(days=3)        # 2025-09-23: its label week runs past the history


def train(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Both rankers for ``day`` into model_versions (what the ranker_model asset does)."""
    ts = training_set(con, day)
    trained, reason = train_rankers(ts)
    replace_partitions(con, {"model_versions": model_rows(day, ts, trained, reason)}, day, day + timedelta(days=1))


def run_day(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Features, candidate pool and recommendations of ``day`` (what daily_pipeline does before monitoring)."""
    for table in ("customer_features", "offer_features"):
        write_features(con, table, day)
    write_candidate_pool(con, day, CandidateLimits())
    write_features(con, "interaction_features", day)
    version, model = selected_model(con, day)
    top = top_k(score_pool(con, day, model), 10, items=offer_items(con)).with_columns(run_date=pl.lit(day), model_version=pl.lit(version))
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
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(evaluated_file, copy)
    con = duckdb.connect(str(copy))
    yield con
    con.close()
