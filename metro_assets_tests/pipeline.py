"""The pipeline's plain functions for a tiny day, as the assets run them (shared by the test packages)."""

import shutil
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from metro_assets.candidates.retrieval import write_candidate_pool
from metro_assets.errors import DataError
from metro_assets.embeddings.item2vec import train_item2vec
from metro_assets.features.daily import write_features
from metro_assets.ranking import uplift
from metro_assets.ranking.training import model_rows, train_rankers, training_set
from metro_assets.settings import CandidateLimits, DeepSettings
from metro_assets.warehouse import replace_partitions


def train(con: duckdb.DuckDBPyConnection, day: date, deep: DeepSettings | None = DeepSettings(),
          uplift_learners: bool = True) -> None:
    """The day's product vectors, every ranker kind and the uplift learners into model_versions (what the
    retrain job's product_embeddings and ranker_model assets do).

    ``deep=None`` leaves Wide & Deep out (LightGBM and logistic regression only).
    """
    pv = train_item2vec(con, day)
    if pv is not None:
        replace_partitions(con, {"product_embeddings": pv.frame()}, day, day + timedelta(days=1))
    ts = training_set(con, day)
    trained, reason = train_rankers(ts, deep)
    rows = model_rows(day, ts, trained, reason)
    if uplift_learners:
        try:  # as the asset: an import without exploration slots or a holdout has no uplift learner
            us = uplift.uplift_training_set(con, day)
            rows = pl.concat([rows, uplift.model_rows(day, us, uplift.train_uplift_learners(us))],
                             how="diagonal_relaxed")
        except DataError:
            pass
    replace_partitions(con, {"model_versions": rows}, day, day + timedelta(days=1))


def features_and_pool(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """The day's feature tables and candidate pool, in the daily pipeline's order."""
    for table in ("customer_features", "offer_features"):
        write_features(con, table, day)
    write_candidate_pool(con, day, CandidateLimits())
    write_features(con, "interaction_features", day)


@contextmanager
def writable_copy(template: Path, folder: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An open connection to a private copy of a read-only template warehouse, which a test may change freely."""
    copy = Path(folder) / "warehouse.duckdb"
    shutil.copy(template, copy)
    con = duckdb.connect(str(copy))
    try:
        yield con
    finally:
        con.close()
