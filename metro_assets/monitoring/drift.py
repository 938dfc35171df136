"""The drift report: PSI of the monitored features and of the served scores, with no Dagster inside.

For a run date D the report compares D against the **training baseline of
the model version that served D** (the version in D's recommendations, or
the newest selected model trained on or before D). The baseline is the state
of the world as of that version's training day T:

* customer features (recency_days, frequency, monetary, promo_affinity,
  avg_basket_size): every customer known before T, as ``customer_features``
  holds them for T (computed with the same SQL when that partition was never
  materialized), against every customer known before D;
* discount_depth: the offers active on T against the offers active on D;
* score (prediction drift): the served top-k scores of T by that same model
  version (read from ``recommendations``, or the model rescoring T's
  candidate pool) against the served scores of D.

Why a snapshot at T rather than the whole training window: the features are
90-day aggregates, so the population as of T is what the model was fitted
and validated for, and a week of ordinary days later it has barely moved
(PSI well under 0.1); a shock moves D away from T at once. After a retrain
the baseline moves to the new training day, so the report calms down again.

Examples
--------
>>> decide({"recency_days": 0.3, "frequency": 0.26, "monetary": 0.25, "score": 0.05}, DriftThresholds())
(True, '3 features at or over 0.25: recency_days 0.300, frequency 0.260, monetary 0.250')
>>> decide({"recency_days": 0.01, "score": 0.3}, DriftThresholds())[1]
'score PSI 0.300 over 0.25'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.features.compute import customer_features, offer_features
from metro_assets.features.daily import DAILY_REQUESTS
from metro_assets.monitoring import psi as psi_
from metro_assets.ranking.scoring import offer_items, score_pool, selected_model, top_k
from metro_assets.warehouse import replace_partitions

CUSTOMER_FEATURES = ("recency_days", "frequency", "monetary", "promo_affinity", "avg_basket_size")
OFFER_FEATURES = ("discount_depth",)
SCORE = "score"
MONITORED = CUSTOMER_FEATURES + OFFER_FEATURES + (SCORE,)


@dataclass(frozen=True)
class DriftThresholds:
    """PSI verdict thresholds and the alert rule (see :class:`metro_assets.resources.DriftSettings`)."""

    moderate: float = 0.1
    major: float = 0.25
    alert_features: int = 3
    score_alert: float = 0.25


@dataclass
class DriftReport:
    run_date: date
    model_version: str
    baseline_day: date
    rows: pl.DataFrame          # the drift_report table's rows of the day
    alert: bool
    reason: str
    notes: list[str] = field(default_factory=list)


def decide(values: dict[str, float], thresholds: DriftThresholds) -> tuple[bool, str]:
    """The alert rule: ``alert_features`` or more features at or over ``major``, or the score
    PSI over ``score_alert``."""
    major = [(f, v) for f, v in values.items() if f != SCORE and v >= thresholds.major]
    reasons = []
    if len(major) >= thresholds.alert_features:
        listed = ", ".join(f"{f} {v:.3f}" for f, v in sorted(major, key=lambda fv: -fv[1]))
        reasons.append(f"{len(major)} features at or over {thresholds.major:g}: {listed}")
    if SCORE in values and values[SCORE] > thresholds.score_alert:
        reasons.append(f"score PSI {values[SCORE]:.3f} over {thresholds.score_alert:g}")
    if not reasons:
        return False, (f"no alert: {len(major)} feature(s) at or over {thresholds.major:g}"
                       + (f", score PSI {values[SCORE]:.3f}" if SCORE in values else ""))
    return True, "; ".join(reasons)


def serving_version(con: duckdb.DuckDBPyConnection, day: date) -> tuple[str, date]:
    """The model version that served ``day`` and its training day.

    The version in the day's recommendations; without any, the newest
    selected model trained on or before the day.
    """
    rows = con.sql("""SELECT r.model_version, m.day FROM recommendations r JOIN model_versions m USING (model_version)
                      WHERE r.run_date = $day GROUP BY ALL ORDER BY count(*) DESC LIMIT 1""",
                   params={"day": day}).fetchall()
    if rows:
        return rows[0][0], rows[0][1]
    version, _ = selected_model(con, day)
    trained = con.sql("SELECT day FROM model_versions WHERE model_version = $v", params={"v": version}).fetchall()
    return version, trained[0][0]


def _snapshot(con: duckdb.DuckDBPyConnection, table: str, day: date, columns: tuple[str, ...]) -> pl.DataFrame:
    """A day's feature partition; computed with the feature SQL when it was never materialized."""
    cols = ", ".join(columns)
    stored = con.sql(f"SELECT {cols} FROM {table} WHERE day = $day", params={"day": day}).pl()
    if stored.height:
        return stored
    con.execute(f"CREATE OR REPLACE TEMP TABLE drift_requests AS {DAILY_REQUESTS[table]}", {"day": day})
    try:
        compute = customer_features if table == "customer_features" else offer_features
        return compute(con, "drift_requests").select(columns)
    finally:
        con.execute("DROP TABLE IF EXISTS drift_requests")


def served_scores(con: duckdb.DuckDBPyConnection, day: date, version: str, k: int = 10) -> np.ndarray | None:
    """The top-k scores ``version`` served on ``day``; rescored from the day's pool when another version served."""
    # the ranker's probability (the score is the objective's value, money under the margin objective)
    stored = con.sql("SELECT coalesce(p_redeem, score) AS score FROM recommendations "
                     "WHERE run_date = $day AND model_version = $v",
                     params={"day": day, "v": version}).pl()
    if stored.height:
        return stored["score"].to_numpy()
    pool = con.sql("SELECT count(*) FROM candidate_pool WHERE day = $day", params={"day": day}).fetchall()[0][0]
    if pool == 0:
        return None
    kind = con.sql("SELECT kind, day FROM model_versions WHERE model_version = $v", params={"v": version}).fetchall()
    found, stored_model = selected_model(con, kind[0][1], kind=kind[0][0])
    if found != version:
        return None
    return top_k(score_pool(con, day, stored_model), k, items=offer_items(con))["score"].to_numpy()


def drift_report(con: duckdb.DuckDBPyConnection, day: date, thresholds: DriftThresholds = DriftThresholds(),
                 k: int = 10) -> DriftReport:
    """PSI of each monitored feature and of the served scores, D against its model's training day.

    Raises
    ------
    DataError
        No model served or could serve ``day`` (nothing to compare against).
    """
    version, baseline_day = serving_version(con, day)
    notes: list[str] = []
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    base_c = _snapshot(con, "customer_features", baseline_day, CUSTOMER_FEATURES)
    cur_c = _snapshot(con, "customer_features", day, CUSTOMER_FEATURES)
    for f in CUSTOMER_FEATURES:
        pairs[f] = (base_c[f].cast(pl.Float64).to_numpy(), cur_c[f].cast(pl.Float64).to_numpy())
    base_o = _snapshot(con, "offer_features", baseline_day, OFFER_FEATURES)
    cur_o = _snapshot(con, "offer_features", day, OFFER_FEATURES)
    for f in OFFER_FEATURES:
        pairs[f] = (base_o[f].cast(pl.Float64).to_numpy(), cur_o[f].cast(pl.Float64).to_numpy())
    base_s, cur_s = served_scores(con, baseline_day, version, k), served_scores(con, day, version, k)
    if base_s is None or cur_s is None:
        missing = baseline_day if base_s is None else day
        notes.append(f"score PSI not computed: no scores of {version} for {missing} "
                     "(materialize that day's recommendations or candidate pool)")
    else:
        pairs[SCORE] = (base_s, cur_s)
    values, rows = {}, []
    for feature, (base, cur) in pairs.items():
        if base.size == 0 or cur.size == 0:
            notes.append(f"{feature}: no values on {baseline_day if base.size == 0 else day}; PSI not computed")
            continue
        values[feature] = psi_.psi(base, cur)
        rows.append({"feature": feature, "psi": values[feature],
                     "verdict": psi_.verdict(values[feature], thresholds.moderate, thresholds.major),
                     "baseline_rows": base.size, "current_rows": cur.size})
    alert, reason = decide(values, thresholds)
    frame = pl.DataFrame(rows, schema={"feature": pl.Utf8, "psi": pl.Float64, "verdict": pl.Utf8,
                                       "baseline_rows": pl.Int32, "current_rows": pl.Int32})
    frame = frame.with_columns(run_date=pl.lit(day), model_version=pl.lit(version),
                               baseline_day=pl.lit(baseline_day), alert=pl.lit(alert))
    return DriftReport(day, version, baseline_day, frame, alert, reason, notes)


def write_drift_report(con: duckdb.DuckDBPyConnection, report: DriftReport) -> int:
    """Replace the run date's rows of ``drift_report``; returns the rows written."""
    day = report.run_date
    return replace_partitions(con, {"drift_report": report.rows}, day, day + timedelta(days=1),
                              column="run_date")["drift_report"]


def markdown_table(report: DriftReport) -> str:
    """Feature, PSI, verdict and sample sizes as Markdown."""
    lines = ["| feature | PSI | verdict | baseline rows | current rows |", "|---|---|---|---|---|"]
    for r in report.rows.iter_rows(named=True):
        lines.append(f"| {r['feature']} | {r['psi']:.4f} | {r['verdict']} | {r['baseline_rows']:,} "
                     f"| {r['current_rows']:,} |")
    return "\n".join(lines)
