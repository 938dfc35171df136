"""Scoring a day's candidate pool and keeping each customer's top 10.

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
from metro_assets.features.compute import MODEL_FEATURES, feature_matrix
from metro_assets.ranking import models
from metro_assets.ranking.training import as_matrix

PAIRS_PER_BATCH = 2_000_000  # bounds memory: features of one batch at a time


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


def score_pool(con: duckdb.DuckDBPyConnection, day: date, model: models.StoredModel) -> pl.DataFrame:
    """Score every pair of the day's candidate pool, in batches of customers."""
    loaded = models.load(model)
    pairs = con.execute("select count(*) from candidate_pool where day = ?", [day]).fetchall()[0][0]
    batches = max(1, -(-pairs // PAIRS_PER_BATCH))
    out = []
    for b in range(batches):  # a loop over batches of ~2M pairs, not rows
        con.execute(
            "create or replace temp table scoring_requests as select customer_id, offer_id, day, strategy "
            f"from candidate_pool where day = ? and customer_id % {batches} = {b}", [day])
        frame = feature_matrix(con, "scoring_requests")
        strategy = con.sql("select customer_id, offer_id, strategy from scoring_requests").pl()
        # a fixed row order: BLAS sums can differ in the last bit with a row's position in the matrix
        frame = frame.join(strategy, on=["customer_id", "offer_id"], how="left").sort("customer_id", "offer_id")
        scores = loaded.predict(as_matrix(frame, model.features if model.features else MODEL_FEATURES))
        out.append(frame.select("customer_id", "offer_id", "strategy").with_columns(score=pl.Series(scores)))
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
