"""Offline evaluation of a run date's recommendations, against baselines and the oracle.

For a run date D whose label window [D, D + 7) is in the warehouse, every
policy ranks the same customers' same candidate pools (the ``candidate_pool``
of D) and is scored two ways:

* **Observed** ranking metrics against the redemptions of [D, D + 7)
  (:mod:`metro_assets.monitoring.metrics`), over the customers of the pool
  who redeemed at least one offer in the window; the others are counted as
  ``customers_without_redemptions``.
* **Oracle** metrics from the simulator's true probabilities
  (:func:`metro_assets.simulation.truth.true_probabilities`), over every
  customer of the pool: expected redemptions of the top 10, the part of them
  that is incremental (minus the purchases that would have happened without
  the offer), discount cost, incremental revenue, discount ROI and margin
  impact, and the share of the best possible top 10's expected redemptions.

Policies: ``model`` (the recommendations that served D), ``lightgbm`` and
``logistic_regression`` (the newest model of each kind trained on or before
D; the serving kind is the served recommendations themselves), ``random``
(averaged over seeds), ``popularity`` and ``segment_popularity``
(redemptions before D, overall or by the customer's segment) and ``oracle``
(the top 10 by true redemption probability). See docs/EVALUATION.md.

Examples
--------
>>> import duckdb
>>> from metro_assets.warehouse import ensure_schema
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> label_window(con, date(2026, 1, 28))
(datetime.date(2026, 1, 28), datetime.date(2026, 2, 4), False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.errors import DataError
from metro_assets.monitoring.metrics import K, RANKING_METRICS, rank_top_k, ranking_metrics
from metro_assets.ranking.scoring import score_pool, selected_model
from metro_assets.simulation import oracle
from metro_assets.simulation.truth import OracleUnavailable, true_probabilities
from metro_assets.simulation.world import Shock
from metro_assets.warehouse import replace_partitions

LABEL_DAYS = 7
RANDOM_SEEDS = 5
MODEL_KINDS = ("lightgbm", "logistic_regression")
POLICIES = ("model", "lightgbm", "logistic_regression", "random", "popularity", "segment_popularity", "oracle")
ORACLE_METRICS = (
    "expected_redemptions_at_10",
    "incremental_redemptions_at_10",
    "oracle_share_at_10",
    "discount_cost_at_10",
    "incremental_revenue_at_10",
    "discount_roi",
    "margin_impact_at_10",
)
COUNT_METRICS = ("customers_evaluated", "customers_without_redemptions", "customers_scored")
METRICS = RANKING_METRICS + ORACLE_METRICS + COUNT_METRICS
PAIRS_PER_BATCH = 2_000_000  # bounds the oracle's memory on a default-scale pool


@dataclass
class Evaluation:
    """The outcome of evaluating one run date."""

    run_date: date
    label_start: date
    label_end: date
    complete: bool                 # was the label window fully in the warehouse
    rows: pl.DataFrame             # run_date, policy, metric, value (empty when not complete)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)   # policy -> model version

    def table(self) -> pl.DataFrame:
        """Metrics as rows, policies as columns (see :func:`wide_table`)."""
        return wide_table(self.rows)


def label_window(con: duckdb.DuckDBPyConnection, day: date) -> tuple[date, date, bool]:
    """[day, day + 7) and whether the warehouse holds it: orders dated on or after its last day.

    The newest order day tells how far the raw data has been loaded; a day
    without orders inside the window (a closed store) does not make it incomplete.
    """
    end = day + timedelta(days=LABEL_DAYS)
    newest = con.sql("SELECT max(day) FROM orders").fetchall()[0][0]
    return day, end, newest is not None and newest >= end - timedelta(days=1)


def _frame(con: duckdb.DuckDBPyConnection, sql: str, **params) -> pl.DataFrame:
    return con.sql(sql, params=params or None).pl()


def policy_rankings(con: duckdb.DuckDBPyConnection, day: date, pool: pl.DataFrame, k: int = K,
                    random_seeds: int = RANDOM_SEEDS, seed: int = 42) -> tuple[dict, dict, list[str]]:
    """Each policy's top-k over the pool: ``{policy: ranked or [ranked per seed]}``, versions, notes.

    ``pool`` holds ``customer_id``, ``offer_id`` (the candidate pool of ``day``).
    """
    notes: list[str] = []
    served = _frame(con, """SELECT r.customer_id, r.offer_id, r.rank, r.model_version, m.kind
                            FROM recommendations r LEFT JOIN model_versions m USING (model_version)
                            WHERE r.run_date = $day""", day=day)
    if served.height == 0:
        raise DataError(f"no recommendations for {day}: materialize recommendations for {day} first")
    version = served["model_version"][0]
    served_kind = served["kind"][0]
    rankings: dict[str, object] = {"model": served.select("customer_id", "offer_id", "rank")}
    versions = {"model": version}
    for kind in MODEL_KINDS:
        if kind == served_kind:
            rankings[kind], versions[kind] = rankings["model"], version
            continue
        try:
            other_version, stored = selected_model(con, day, kind=kind)
        except DataError:
            notes.append(f"no {kind} model trained on or before {day}: policy {kind} skipped")
            continue
        rankings[kind] = rank_top_k(score_pool(con, day, stored).select("customer_id", "offer_id", "score"), k)
        versions[kind] = other_version

    randoms = []
    pool = pool.sort("customer_id", "offer_id")  # the draws must not depend on the order the query returned
    for s in range(random_seeds):
        rng = np.random.default_rng([seed, day.toordinal(), s])
        randoms.append(rank_top_k(pool.with_columns(score=pl.Series(rng.random(pool.height))), k))
    rankings["random"] = randoms

    popular = _frame(con, "SELECT offer_id, count(*) AS score FROM redemptions WHERE day < $day GROUP BY ALL",
                     day=day)
    rankings["popularity"] = rank_top_k(
        pool.join(popular, on="offer_id", how="left").with_columns(pl.col("score").fill_null(0)), k)
    by_segment = _frame(con, """SELECT c.segment, r.offer_id, count(*) AS score
                                FROM redemptions r JOIN customers c USING (customer_id)
                                WHERE r.day < $day GROUP BY ALL""", day=day)
    segments = _frame(con, "SELECT customer_id, segment FROM customers")
    rankings["segment_popularity"] = rank_top_k(
        pool.join(segments, on="customer_id", how="left")
        .join(by_segment, on=["segment", "offer_id"], how="left")
        .with_columns(pl.col("score").fill_null(0)), k)
    return rankings, versions, notes


def pool_truth(con: duckdb.DuckDBPyConnection, day: date, shock: Shock | None = None) -> pl.DataFrame:
    """True probabilities of every pair of the day's candidate pool, in batches of customers."""
    pairs = con.sql("SELECT count(*) FROM candidate_pool WHERE day = $day", params={"day": day}).fetchall()[0][0]
    batches = max(1, -(-pairs // PAIRS_PER_BATCH))
    out = []
    try:
        for b in range(batches):  # a loop over batches of ~2M pairs, not rows
            con.execute("CREATE OR REPLACE TEMP TABLE evaluation_pairs AS SELECT customer_id, offer_id "
                        f"FROM candidate_pool WHERE day = $day AND customer_id % {batches} = {b}", {"day": day})
            out.append(true_probabilities(con, "evaluation_pairs", day, shock))
    finally:
        con.execute("DROP TABLE IF EXISTS evaluation_pairs")
    return pl.concat(out)


def offer_economics(con: duckdb.DuckDBPyConnection, offer_ids: pl.Series) -> pl.DataFrame:
    """Per offer: units, shelf value, discount and unit margin of one redemption.

    One redemption buys ``units`` items (bogo: 1 + free items, else 1) worth
    ``gross = units * base_price`` and takes ``discount = depth * gross`` off
    (the same depth the oracle uses). ``unit_margin = base_price * margin``.
    """
    con.register("evaluation_offer_ids", pl.DataFrame({"offer_id": offer_ids.unique()}).to_arrow())
    try:
        x = _frame(con, """SELECT o.offer_id, o.discount_type, o.discount_value, p.base_price,
                                  coalesce(p.margin, 0.0) AS margin
                           FROM offers o JOIN products p USING (product_id)
                           WHERE o.offer_id IN (SELECT offer_id FROM evaluation_offer_ids)""")
    finally:
        con.unregister("evaluation_offer_ids")
    depth = oracle.discount_depth(x["discount_type"].to_numpy(), x["discount_value"].cast(pl.Float64).to_numpy(),
                                  x["base_price"].to_numpy())
    bogo = x["discount_type"].str.strip_chars().str.to_lowercase() == "bogo"
    units = pl.when(bogo).then(1.0 + x["discount_value"].cast(pl.Float64)).otherwise(1.0)
    return x.select(
        "offer_id",
        "base_price",
        "margin",
        units=units,
    ).with_columns(depth=pl.Series(np.nan_to_num(depth))).with_columns(
        gross=pl.col("units") * pl.col("base_price"),
    ).with_columns(discount=pl.col("depth") * pl.col("gross"))


def value_sums(ranked: pl.DataFrame, truth: pl.DataFrame, k: int = K) -> dict[str, float]:
    """Sums over the top-k pairs of expected redemptions, incremental ones, discount cost, revenue and margin.

    ``truth`` holds ``customer_id``, ``offer_id``, ``p_redeem``, ``p_base`` and
    the :func:`offer_economics` columns. Without the offer the customer buys
    one unit at full price with probability ``p_base``; with it, they redeem
    with probability ``p_redeem`` and pay ``gross - discount``.
    """
    x = ranked.filter(pl.col("rank") <= k).select("customer_id", "offer_id").join(
        truth, on=["customer_id", "offer_id"], how="inner")
    p, b = pl.col("p_redeem").fill_null(0.0), pl.col("p_base").fill_null(0.0)
    paid = pl.col("gross") - pl.col("discount")
    cost = pl.col("gross") * (1.0 - pl.col("margin"))
    sums = x.select(
        expected=p.sum(),
        incremental=(p - b).sum(),
        discount_cost=(p * pl.col("discount")).sum(),
        incremental_revenue=(p * paid - b * pl.col("base_price")).sum(),
        margin_impact=(p * (paid - cost) - b * pl.col("base_price") * pl.col("margin")).sum(),
    ).row(0, named=True)
    return {key: float(v or 0.0) for key, v in sums.items()}


def _oracle_metrics(sums: dict[str, float], best: float) -> dict[str, float]:
    out = {
        "expected_redemptions_at_10": sums["expected"],
        "incremental_redemptions_at_10": sums["incremental"],
        "discount_cost_at_10": sums["discount_cost"],
        "incremental_revenue_at_10": sums["incremental_revenue"],
        "margin_impact_at_10": sums["margin_impact"],
    }
    if best > 0:
        out["oracle_share_at_10"] = sums["expected"] / best
    if sums["discount_cost"] > 0:
        out["discount_roi"] = sums["incremental_revenue"] / sums["discount_cost"]
    return out


def _mean(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([d[key] for d in dicts])) for key in dicts[0]}


def evaluate(con: duckdb.DuckDBPyConnection, day: date, k: int = K, random_seeds: int = RANDOM_SEEDS,
             seed: int = 42, shock: Shock | None = None) -> Evaluation:
    """Evaluate the recommendations of run date ``day`` and the baselines on the same pools.

    Returns an :class:`Evaluation`; when the label window is not fully in the
    warehouse it is ``complete=False`` with no rows (nothing to record yet).

    Raises
    ------
    DataError
        The day has no candidate pool or no recommendations.
    """
    start, end, complete = label_window(con, day)
    empty = pl.DataFrame(schema={"run_date": pl.Date, "policy": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64})
    if not complete:
        note = (f"label window {start}..{end - timedelta(days=1)} is not fully in the warehouse: "
                f"nothing recorded; evaluate {day} again once the raw data of those days exists")
        return Evaluation(day, start, end, False, empty, [note])
    pool = _frame(con, "SELECT customer_id, offer_id FROM candidate_pool WHERE day = $day", day=day)
    if pool.height == 0:
        raise DataError(f"no candidate_pool for {day}: materialize the daily pipeline for {day} first")
    rankings, versions, notes = policy_rankings(con, day, pool, k, random_seeds, seed)
    scored = pool["customer_id"].unique()
    relevant = _frame(con, "SELECT DISTINCT customer_id, offer_id FROM redemptions WHERE day >= $s AND day < $e",
                      s=start, e=end)
    evaluated = relevant.join(pl.DataFrame({"customer_id": scored}), on="customer_id", how="semi")
    counts = {"customers_scored": float(scored.len())}
    counts["customers_without_redemptions"] = counts["customers_scored"] - evaluated["customer_id"].n_unique()

    truth = None
    try:
        truth = pool_truth(con, day, shock).join(offer_economics(con, pool["offer_id"]), on="offer_id", how="left")
    except OracleUnavailable as exc:
        notes.append(f"{exc}: oracle metrics and the oracle policy are not reported")
    if truth is not None:
        rankings["oracle"] = rank_top_k(truth.select("customer_id", "offer_id", score="p_redeem"), k)
        best = value_sums(rankings["oracle"], truth, k)["expected"]

    results: dict[str, dict[str, float]] = {}
    for policy in POLICIES:
        if policy not in rankings:
            continue
        runs = rankings[policy] if isinstance(rankings[policy], list) else [rankings[policy]]
        observed = _mean([ranking_metrics(r, evaluated, scored, k) for r in runs])
        values = {}
        if truth is not None:
            sums = _mean([value_sums(r, truth, k) for r in runs])
            values = _oracle_metrics(sums, best)
        results[policy] = {**observed, **values, **counts}
    rows = pl.DataFrame(
        [{"run_date": day, "policy": p, "metric": m, "value": v}
         for p, metrics in results.items() for m, v in metrics.items() if np.isfinite(v)],
        schema=empty.schema,
    )
    return Evaluation(day, start, end, True, rows, notes, versions)


def write_evaluation(con: duckdb.DuckDBPyConnection, evaluation: Evaluation) -> int:
    """Replace the run date's rows of ``offline_evaluation`` (only for a complete window); rows written."""
    if not evaluation.complete:
        return 0
    day = evaluation.run_date
    return replace_partitions(con, {"offline_evaluation": evaluation.rows}, day, day + timedelta(days=1),
                              column="run_date")["offline_evaluation"]


def wide_table(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per metric (in :data:`METRICS` order), one column per policy (in :data:`POLICIES` order)."""
    if rows.height == 0:
        return pl.DataFrame({"metric": []}, schema={"metric": pl.Utf8})
    wide = rows.pivot(on="policy", index="metric", values="value", aggregate_function="first")
    order = pl.DataFrame({"metric": list(METRICS), "order": range(len(METRICS))})
    columns = ["metric"] + [p for p in POLICIES if p in wide.columns]
    return wide.join(order, on="metric", how="left").sort("order", nulls_last=True).select(columns)


def markdown_table(rows: pl.DataFrame) -> str:
    """The wide table as Markdown (counts as integers, money with 2 decimals, the rest with 4)."""
    wide = wide_table(rows)
    if wide.height == 0:
        return "(nothing recorded)"
    policies = wide.columns[1:]
    lines = ["| metric | " + " | ".join(policies) + " |", "|---" * (len(policies) + 1) + "|"]
    for row in wide.iter_rows(named=True):
        metric = row["metric"]
        fmt = ("{:,.0f}" if metric.startswith("customers") else
               "{:,.2f}" if metric.endswith(("cost_at_10", "revenue_at_10", "impact_at_10")) or
               metric.startswith(("expected", "incremental_redemptions")) else "{:.4f}")
        cells = ["" if row[p] is None else fmt.format(row[p]) for p in policies]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
