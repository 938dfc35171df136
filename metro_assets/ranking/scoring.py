"""Scoring a day's candidate pool and keeping each customer's top 10.

Scoring day D reads D's feature tables (``customer_features``,
``offer_features``, ``interaction_features``), never the raw tables: the
graph's edges are what scoring reads, and re-materializing a feature
partition changes what is scored. A missing feature partition stops scoring
with one line naming the table and day.

Examples
--------
>>> import polars as pl
>>> scored = pl.DataFrame({"customer_id": [1, 1, 1], "offer_id": [9, 3, 5], "score": [0.2, 0.2, 0.1],
...                        "strategy": ["a", "a", "a"]})
>>> top_k(scored, 2)["offer_id"].to_list()  # ties break by offer_id
[3, 9]
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from metro_assets.errors import DataError
from metro_assets.features.compute import FEATURE_TABLES, MODEL_FEATURES, stored_matrix
from metro_assets.ranking import models
from metro_assets.ranking.training import as_matrix

PAIRS_PER_BATCH = 1_000_000  # bounds memory: one batch's features and the model's temporaries at a time


def selected_model(con: duckdb.DuckDBPyConnection, day: date, kind: str | None = None) -> tuple[str, models.StoredModel]:
    """The newest model trained on or before ``day`` (the selected one, or the given kind)."""
    rows = con.execute(
        "select model_version, kind, model, features, negative_sampling_rate, importances from model_versions "
        "where day <= $day and (case when $kind is null then selected else kind = $kind end) "
        "order by day desc limit 1",
        {"day": day, "kind": kind},
    ).fetchall()
    if not rows:
        raise DataError(f"no ranker_model trained on or before {day}"
                        + (f" of kind {kind}" if kind else "") + ": run the retrain job for that day or earlier")
    version, kind, blob, features, rate, _ = rows[0]
    return version, models.StoredModel(kind, blob, list(features), rate, {})


def _check_features(frame: pl.DataFrame, day: date) -> None:
    """Raise a one-line DataError when a pair of the pool has no row in a feature table of ``day``."""
    for table in FEATURE_TABLES:
        missing = int(frame[f"missing_{table}"].sum())
        if not missing:
            continue
        if missing == frame.height:
            raise DataError(f"{table} has no partition {day} for the candidate pool's pairs: "
                            f"materialize {table} for {day} before scoring it")
        first = frame.filter(pl.col(f"missing_{table}")).row(0, named=True)
        raise DataError(f"{table} {day} lacks {missing} of the candidate pool's {frame.height} pairs (e.g. customer "
                        f"{first['customer_id']}, offer {first['offer_id']}): re-materialize {table} for {day}")


def score_pool(con: duckdb.DuckDBPyConnection, day: date, model: models.StoredModel) -> pl.DataFrame:
    """Score every pair of the day's candidate pool with ``model``, in batches of customers.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The warehouse.
    day : datetime.date
        The run date: its ``candidate_pool`` and feature-table partitions are read.
    model : StoredModel
        The model (see :func:`selected_model`).

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``offer_id``, ``strategy``, ``score``: one row per pool pair.

    Raises
    ------
    DataError
        A feature table has no partition for ``day`` or misses pairs of the pool.
    """
    loaded = models.load(model)
    pairs = con.execute("select count(*) from candidate_pool where day = ?", [day]).fetchall()[0][0]
    batches = max(1, -(-pairs // PAIRS_PER_BATCH))
    out = []
    try:
        for b in range(batches):  # a loop over batches of ~2M pairs, not rows
            con.execute(
                "create or replace temp table scoring_requests as select customer_id, offer_id, day, strategy "
                f"from candidate_pool where day = ? and customer_id % {batches} = {b}", [day])
            frame = stored_matrix(con, "scoring_requests", day, carry=("strategy",))
            _check_features(frame, day)
            # a fixed row order: the model's arithmetic (BLAS blocks) may round a row differently by position
            frame = frame.sort("customer_id", "offer_id")
            X = as_matrix(frame, model.features if model.features else MODEL_FEATURES)
            keys = frame.select("customer_id", "offer_id", "strategy")
            del frame  # not held while the model runs: prediction's temporaries are the step's memory peak
            out.append(keys.with_columns(score=pl.Series(loaded.predict(X))))
            del X
    finally:
        con.execute("drop table if exists scoring_requests")
    return pl.concat(out) if out else pl.DataFrame(
        schema={"customer_id": pl.Int64, "offer_id": pl.Int64, "strategy": pl.Utf8, "score": pl.Float64})


def top_k(scored: pl.DataFrame, k: int = 10) -> pl.DataFrame:
    """Each customer's ``k`` best offers by score (ties: lower offer_id first), ranked 1..k."""
    return (
        scored.sort(["customer_id", "score", "offer_id"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("customer_id").cast(pl.Int32))
        .filter(pl.col("rank") <= k)
    )
