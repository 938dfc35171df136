"""One table comparing every model kind on the same run date: fit, causal value and cost.

For a run date D already evaluated (:func:`metro_assets.monitoring.evaluation.evaluate`),
each model kind that ranked D's pool gets one row: the version, whether it
served, its validation AUC and log-loss (``model_versions``, the week the
selection rule reads), its training time, its oracle share and expected
redemptions@10 with their 95% intervals, its paired difference against
LightGBM (policy ``<kind>_minus_lightgbm``), and its scoring speed. Speed is
measured here: the same sample of D's pool (read once from the stored
feature tables) is scored by each kind, and only the model's own work is
timed, so the kinds are compared on equal terms. Timings are wall clock on
whatever else the machine runs; the docs quote an idle-machine measurement.

Examples
--------
>>> COLUMNS[:3]
('kind', 'model_version', 'serves')
"""

from __future__ import annotations

import time
from datetime import date

import duckdb
import numpy as np
import polars as pl

from metro_assets.errors import DataError
from metro_assets.features.compute import stored_matrix
from metro_assets.ranking import models
from metro_assets.ranking.scoring import selected_model
from metro_assets.ranking.training import as_matrix

#: Pairs of D's pool scored to time each kind (whole customers, so it is a slice of real lists).
SPEED_PAIRS = 200_000
COLUMNS = ("kind", "model_version", "serves", "validation_auc", "validation_log_loss", "validation_grouped_auc",
           "train_seconds",
           "oracle_share", "oracle_share_low", "oracle_share_high",
           "expected_redemptions_at_10", "expected_redemptions_low", "expected_redemptions_high",
           "oracle_share_minus_lightgbm", "minus_lightgbm_low", "minus_lightgbm_high", "scoring_pairs_per_second")


def _speed_sample(con: duckdb.DuckDBPyConnection, day: date, pairs: int) -> pl.DataFrame:
    """Up to about ``pairs`` pairs of D's pool (every k-th customer), with their stored features and ids."""
    total = con.execute("select count(*) from candidate_pool where day = ?", [day]).fetchall()[0][0]
    step = max(1, total // max(pairs, 1))
    con.execute("create or replace temp table comparison_requests as select customer_id, offer_id, day "
                f"from candidate_pool where day = ? and customer_id % {step} = 0", [day])
    try:
        return stored_matrix(con, "comparison_requests", day, ids=True).sort("customer_id", "offer_id")
    finally:
        con.execute("drop table if exists comparison_requests")


def scoring_speed(stored: models.StoredModel, frame: pl.DataFrame) -> float:
    """Pairs per second of ``stored``'s predictions on ``frame`` (loading and matrix building not timed)."""
    loaded = models.load(stored)
    X = as_matrix(frame, stored.features)
    loaded.predict(X[:1000])  # warm up (first-call allocations, thread pools)
    started = time.perf_counter()
    loaded.predict(X)
    return len(X) / max(time.perf_counter() - started, 1e-9)


def model_comparison(con: duckdb.DuckDBPyConnection, day: date, rows: pl.DataFrame,
                     speed_pairs: int = SPEED_PAIRS) -> pl.DataFrame:
    """One row per model kind evaluated on ``day`` (columns :data:`COLUMNS`).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The warehouse.
    day : datetime.date
        An evaluated run date: its candidate pool and feature tables are read.
    rows : polars.DataFrame
        That day's evaluation rows (``Evaluation.rows`` or ``offline_evaluation``).
    speed_pairs : int
        About how many pool pairs each kind scores for the speed column; 0 skips it.
    """
    from metro_assets.monitoring.evaluation import MODEL_KINDS, kind_paired_policy

    cell = {(r["policy"], r["metric"]): r for r in rows.iter_rows(named=True)}
    sample = _speed_sample(con, day, speed_pairs) if speed_pairs else None
    out = []
    for kind in MODEL_KINDS:
        share = cell.get((kind, "oracle_share"))
        if share is None and not rows.is_empty():
            continue  # not evaluated on this day (no model of this kind)
        try:
            version, stored = selected_model(con, day, kind=kind)
        except DataError:  # no model of that kind trained on or before the day: no row
            continue
        meta = con.execute("select selected, validation_auc, validation_log_loss, validation_grouped_auc, "
                           "train_seconds from model_versions where model_version = ?", [version]).fetchall()[0]
        expected = cell.get((kind, "expected_redemptions_at_10"))
        diff = cell.get((kind_paired_policy(kind), "oracle_share"))
        speed = scoring_speed(stored, sample) if sample is not None and sample.height else None
        get = lambda r, k: None if r is None else r[k]  # noqa: E731
        out.append((kind, version, bool(meta[0]), meta[1], meta[2], meta[3], meta[4],
                    get(share, "value"), get(share, "ci_low"), get(share, "ci_high"),
                    get(expected, "value"), get(expected, "ci_low"), get(expected, "ci_high"),
                    0.0 if kind == "lightgbm" else get(diff, "value"), get(diff, "ci_low"), get(diff, "ci_high"),
                    speed))
    schema = {c: t for c, t in zip(COLUMNS, (pl.Utf8, pl.Utf8, pl.Boolean, *[pl.Float64] * (len(COLUMNS) - 3)))}
    return pl.DataFrame(out, schema=schema, orient="row")


def _fmt(v, spec: str) -> str:
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _ci(v, low, high, spec: str) -> str:
    text = _fmt(v, spec)
    return f"{text} [{_fmt(low, spec)}, {_fmt(high, spec)}]" if text and low is not None else text


def markdown(table: pl.DataFrame) -> str:
    """The comparison as Markdown, one row per kind."""
    if table.is_empty():
        return "(no model kind evaluated)"
    lines = ["| kind | serves | validation AUC | validation log-loss | validation grouped AUC | training s "
             "| oracle share [95% CI] | expected redemptions@10 [95% CI] | oracle share − LightGBM [95% CI] "
             "| scoring pairs/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.iter_rows(named=True):
        lines.append(
            f"| {r['kind']} | {'yes' if r['serves'] else ''} | {_fmt(r['validation_auc'], '.4f')} "
            f"| {_fmt(r['validation_log_loss'], '.4f')} | {_fmt(r['validation_grouped_auc'], '.4f')} "
            f"| {_fmt(r['train_seconds'], '.1f')} "
            f"| {_ci(r['oracle_share'], r['oracle_share_low'], r['oracle_share_high'], '.3f')} "
            f"| {_ci(r['expected_redemptions_at_10'], r['expected_redemptions_low'], r['expected_redemptions_high'], '.4f')} "
            f"| {_ci(r['oracle_share_minus_lightgbm'], r['minus_lightgbm_low'], r['minus_lightgbm_high'], '+.3f')} "
            f"| {_fmt(r['scoring_pairs_per_second'], ',.0f')} |")
    return "\n".join(lines)
