"""Pooled evaluation: every recorded run date of the N weeks up to D, with a bootstrap over customers and dates.

One run date of a sparse log grades few customers (an import: 9 customers
with a redemption in the label week), so its figures are noise. The
summary of D pools every run date ``offline_evaluation`` recorded in the
``METRO_EVALUATION_POOL_WEEKS`` weeks up to D: the unit is a customer-date,
each metric the same ratio of sums as on one day, summed over the days.

Why stored sums, not per-customer rows or a recomputation.
``offline_evaluation`` already holds every policy's per-customer values when
it grades a day; it writes, per policy, their sums unweighted and under 400
bootstrap weights (``evaluation_sums``, about 4,000 rows a day whatever the
scale: 10 policies x 401 replicates). Recomputing would rescore every pool
and rerun the oracle for each of up to 56 days (about 30 s a day at the demo
scale); per-customer rows would be 10 policies x 50,000 customers a day at
the default scale. Sums are exact for every metric here, because each is a
ratio of sums (means, IPS/SNIPS, ESS, the oracle share) or a difference of
such ratios, and they cost one more (400 x customers) @ (customers x 210)
product per graded day.

The bootstrap (two-way, "pigeonhole": Owen 2007). A replicate weights
customer c on run date d by W_c x V_d, both Poisson(1):

* W_c is keyed on (METRO_SEED, replicate, customer id)
  (:func:`.bootstrap.keyed_weights`), so the same customer weighs the same on
  every day: a customer's days are resampled together (they are not
  independent draws);
* V_d is drawn here per (replicate, run date): the days are a sample too (a
  holiday week, a campaign).

Sum over customers of W_c x V_d x value = Σ_d V_d x (stored replicate sum
of d), so pooling is a weighted sum of stored rows. A draw of V without any
day is drawn again. With one run date V scales numerator and denominator
alike and only the customers resample; a day pooled with an exact copy of
itself gives the day's own interval, not one sqrt(2) narrower.
All policies share the weights, so ``model_minus_<baseline>`` is paired.

Examples
--------
>>> import numpy as np
>>> stats = statistics({q: np.array([2.0]) for q in ("customers", "evaluated", "ndcg")})
>>> float(stats["ndcg_at_10"][0])
1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.monitoring import bootstrap
from metro_assets.monitoring.evaluation import (
    BASELINES, CAUSAL_METRICS, KIND_PAIRED_METRICS, METRICS, MODEL_KINDS, PAIRED_METRICS, POLICIES, QUANTITIES,
    SCHEMA, kind_paired_policy, markdown_table, paired_policy,
)
from metro_assets.monitoring.metrics import RANKING_METRICS
from metro_assets.warehouse import replace_partitions

#: Metrics whose model-minus-baseline difference the summary reports, beside offline_evaluation's causal ones:
#: what an import has (logged outcomes, purchases, SNIPS).
EXTRA_PAIRED = ("snips_redemptions_at_10", "ndcg_at_10", "product_purchase_rate_at_10")
#: The figure that says whether the model is told apart from popularity: the first one the pool has.
SEPARATION_METRICS = ("expected_redemptions_at_10", "snips_redemptions_at_10", "ndcg_at_10",
                      "product_purchase_rate_at_10")
#: The customer-dates each of those figures averages over.
UNITS = {"expected_redemptions_at_10": "customers_scored", "snips_redemptions_at_10": "customers_logged",
         "ndcg_at_10": "customers_evaluated", "product_purchase_rate_at_10": "customers_scored"}
#: evaluation_sums columns added after it first shipped: run dates recorded before hold NULL there.
ADDED_LATER = ("within", "oracle_within")
#: Fewer customer-dates than this behind the headline figure: too small, whatever its interval says.
MIN_UNITS = 30


@dataclass
class Summary:
    """The pooled evaluation of one partition D."""

    run_date: date
    window: tuple[date, date]           # [first, last] run dates the pool may hold
    run_dates: list[date]               # the recorded run dates pooled
    rows: pl.DataFrame                  # run_date (= D), policy, metric, value, ci_low, ci_high
    verdict: str = ""                   # one plain sentence: is the model told apart from popularity
    separated: bool | None = None       # None: nothing to compare
    notes: list[str] = field(default_factory=list)


def statistics(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each metric of one policy from its (pooled) sums; every array is per replicate.

    The same formulas as one day's (:mod:`.evaluation`, :mod:`.offpolicy`), as
    ratios of sums: causal means per pool customer, the oracle share, logged
    outcomes per evaluated customer, the purchase rate per pool customer,
    IPS/SNIPS/ESS. A family without sums (NULL: its inputs were missing) is left out.
    """
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if s.get("expected") is not None:
            for metric, q in zip(CAUSAL_METRICS[:4], ("expected", "incremental", "margin", "discount")):
                out[metric] = s[q] / s["customers"]
            out["oracle_share"] = s["expected"] / s["oracle_expected"]
        if s.get("within") is not None:
            out["expected_redemptions_within_caps_at_10"] = s["within"] / s["customers"]
            out["oracle_share_within_caps"] = s["within"] / s["oracle_within"]
        if s.get("lists") is not None:
            out["ips_redemptions_at_10"] = s["wr"] / s["live"] * s["slots"] / s["lists"]
            out["snips_redemptions_at_10"] = s["wr"] / s["w0"] * s["slots"] / s["lists"]
            out["ess"] = s["w"] ** 2 / s["w2"]
        if s.get("evaluated") is not None:
            for metric, q in zip(RANKING_METRICS, ("ndcg", "mrr", "precision", "recall", "redeemed")):
                if s.get(q) is not None:
                    out[metric] = s[q] / s["evaluated"]
        if s.get("purchased") is not None:
            out["product_purchase_rate_at_10"] = s["purchased"] / s["customers"]
    return out


def recorded_dates(con: duckdb.DuckDBPyConnection, first: date, last: date) -> tuple[list[date], list[date]]:
    """Run dates in [first, last] with pooled sums, and those recorded by offline_evaluation without them."""
    with_sums = [r[0] for r in con.sql("SELECT DISTINCT run_date FROM evaluation_sums WHERE run_date BETWEEN $a AND $b "
                                       "ORDER BY 1", params={"a": first, "b": last}).fetchall()]
    graded = [r[0] for r in con.sql("SELECT DISTINCT run_date FROM offline_evaluation WHERE run_date BETWEEN $a AND $b "
                                    "ORDER BY 1", params={"a": first, "b": last}).fetchall()]
    return with_sums, [d for d in graded if d not in set(with_sums)]


def _row(day: date, policy: str, metric: str, value: float, low=None, high=None) -> dict:
    finite = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
    return {"run_date": day, "policy": policy, "metric": metric, "value": float(value),
            "ci_low": finite(low), "ci_high": finite(high)}


def _cells(day: date, policy: str, stats: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    for metric, values in stats.items():
        point = values[0]
        if not np.isfinite(point):
            continue  # e.g. no evaluated customer: no logged-outcome figure (never NaN, never 0)
        low, high = bootstrap.interval(values[1:, None])
        rows.append(_row(day, policy, metric, point, low[0], high[0]))
    return rows


def summarize(con: duckdb.DuckDBPyConnection, day: date, weeks: int = 8, seed: int = 42) -> Summary:
    """Pool the recorded run dates of [day - 7 x weeks + 1, day]: rows in offline_evaluation's long form."""
    first = day - timedelta(days=7 * weeks - 1)
    dates, without = recorded_dates(con, first, day)
    notes = []
    if without:
        notes.append(f"{len(without)} run date(s) recorded before the pooled sums existed are left out "
                     f"({', '.join(map(str, without[:5]))}{'...' if len(without) > 5 else ''}): "
                     "re-materialize offline_evaluation for them to pool them")
    empty = pl.DataFrame(schema=SCHEMA)
    if not dates:
        verdict = (f"nothing to pool: no run date in {first}..{day} has been evaluated "
                   "(materialize offline_evaluation for run dates whose label week has landed)")
        return Summary(day, (first, day), [], empty, verdict, None, notes)
    sums = con.sql("SELECT * FROM evaluation_sums WHERE run_date BETWEEN $a AND $b ORDER BY run_date, policy, "
                   "replicate", params={"a": first, "b": day}).pl()
    replicates = int(sums["replicate"].max())
    # V: one Poisson(1) weight per (replicate, run date); replicate 0 is the plain sum
    rng = np.random.default_rng([seed, day.toordinal()])
    v = rng.poisson(1.0, size=(replicates + 1, len(dates))).astype(float)
    v[0] = 1.0
    while (empty_draws := v.sum(axis=1) == 0).any():  # a resample must hold a day: draw those again
        v[empty_draws] = rng.poisson(1.0, size=(int(empty_draws.sum()), len(dates)))
    sums = sums.join(pl.DataFrame({"run_date": dates, "date_index": range(len(dates))},
                                  schema={"run_date": pl.Date, "date_index": pl.Int64}), on="run_date")
    pooled: dict[str, dict[str, np.ndarray]] = {}
    noted_capped = False  # the note on run dates without the within-caps sums: once
    for (policy,), frame in sums.group_by("policy"):
        if frame.select(pl.col("run_date").n_unique()).item() < len(dates):
            notes.append(f"policy {policy} is missing on some pooled run dates: left out of the summary")
            continue
        frame = frame.sort("run_date", "replicate")
        weight = v[frame["replicate"].to_numpy(), frame["date_index"].to_numpy()]
        s = {}
        for q in QUANTITIES:
            col = frame[q]
            if col.null_count():  # a family missing on any pooled day is missing from the pool
                if q in ADDED_LATER and col.null_count() < len(col) and not noted_capped:
                    noted_capped = True
                    notes.append("the within-caps sums are missing on some pooled run dates (recorded by an older "
                                 "version): the within-caps metrics are left out; re-materialize offline_evaluation "
                                 "for those dates to pool them")
                s[q] = None
                continue
            s[q] = np.bincount(frame["replicate"].to_numpy(), weights=col.to_numpy() * weight,
                               minlength=replicates + 1)
        pooled[policy] = s
    stats = {p: statistics(s) for p, s in pooled.items()}
    if "random" in stats and "product_purchase_rate_at_10" in stats["random"]:
        base = stats["random"]["product_purchase_rate_at_10"]
        for p in stats:
            if "product_purchase_rate_at_10" in stats[p]:
                with np.errstate(divide="ignore", invalid="ignore"):
                    stats[p]["product_purchase_lift_at_10"] = stats[p]["product_purchase_rate_at_10"] / base
    rows = []
    for p in [p for p in POLICIES if p in stats]:
        rows += _cells(day, p, stats[p])
    paired = {}
    if "model" in stats:
        for b in BASELINES:
            if b not in stats:
                continue
            diff = {m: stats["model"][m] - stats[b][m] for m in (*PAIRED_METRICS, *EXTRA_PAIRED)
                    if m in stats["model"] and m in stats[b]}
            paired[b] = diff
            rows += _cells(day, paired_policy(b), diff)
    if "lightgbm" in stats:  # every other model kind against LightGBM, as offline_evaluation pairs them
        for kind in [k for k in MODEL_KINDS[1:] if k in stats]:
            rows += _cells(day, kind_paired_policy(kind), {m: stats[kind][m] - stats["lightgbm"][m]
                                                           for m in KIND_PAIRED_METRICS
                                                           if m in stats[kind] and m in stats["lightgbm"]})
    for p in [p for p in POLICIES if p in pooled]:
        s = pooled[p]
        counts = {"customers_scored": s["customers"][0],
                  "customers_evaluated": s["evaluated"][0] if s["evaluated"] is not None else 0.0,
                  "run_dates": float(len(dates))}
        counts["customers_without_redemptions"] = counts["customers_scored"] - counts["customers_evaluated"]
        if s["logged"] is not None:
            counts["customers_logged"] = s["logged"][0]
        rows += [_row(day, p, m, value) for m, value in counts.items()]
    out = pl.DataFrame(rows, schema=SCHEMA) if rows else empty
    verdict, separated = _verdict(out, dates)
    return Summary(day, (first, day), dates, out, verdict, separated, notes)


def _verdict(rows: pl.DataFrame, dates: list[date]) -> tuple[str, bool | None]:
    """Plain words: does the pool tell the served model apart from popularity, on which figure, on how much.

    The headline is the first of :data:`SEPARATION_METRICS` the pool has (the
    causal figure, else SNIPS, else NDCG: the figure the issue's 9-customer
    comparison was about); the model is told apart when the paired
    difference's whole interval is on one side of 0 *and* at least
    :data:`MIN_UNITS` customer-dates stand behind it (a percentile interval
    on a dozen customers is not to be trusted). The other comparisons follow.
    """
    cell = {(r["policy"], r["metric"]): r for r in rows.iter_rows(named=True)}
    pair = paired_policy("popularity")
    available = [m for m in SEPARATION_METRICS if (pair, m) in cell and cell[(pair, m)]["ci_low"] is not None]
    count = lambda metric: cell.get(("model", metric), {}).get("value", 0.0)  # noqa: E731
    pool = (f"{len(dates)} run date(s), {count('customers_scored'):,.0f} customer-dates scored, "
            f"{count('customers_evaluated'):,.0f} with a redemption")
    if not available:
        return f"no model-minus-popularity figure with an interval in the pool ({pool})", None

    def judged(metric: str) -> tuple[str, bool]:
        r = cell[(pair, metric)]
        units = count(UNITS[metric])
        figure = f"{metric} {r['value']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
        if units < MIN_UNITS:
            return f"{figure}, on only {units:,.0f} {UNITS[metric].replace('_', ' ')} (fewer than {MIN_UNITS})", False
        if r["ci_low"] > 0 or r["ci_high"] < 0:
            return f"{figure}, whole interval {'above' if r['ci_low'] > 0 else 'below'} 0", True
        return f"{figure} includes 0", False

    head, separated = judged(available[0])
    others = "; ".join(f"{text} ({'separated' if ok else 'not separated'})"
                       for text, ok in (judged(m) for m in available[1:]))
    tail = f" Other figures, model - popularity: {others}." if others else ""
    if separated:
        return f"The model is separated from popularity: model - popularity {head} ({pool}).{tail}", True
    return (f"TOO SMALL TO SEPARATE the model from popularity: model - popularity {head} ({pool}); pool more "
            f"weeks (METRO_EVALUATION_POOL_WEEKS) or wait for more history.{tail}", False)


def write_summary(con: duckdb.DuckDBPyConnection, summary: Summary) -> int:
    """Replace D's rows of ``evaluation_summary``; rows written."""
    day = summary.run_date
    return replace_partitions(con, {"evaluation_summary": summary.rows}, day, day + timedelta(days=1),
                              column="run_date")["evaluation_summary"]


def markdown(summary: Summary) -> str:
    """The pooled table (metrics x policies, values with intervals) as Markdown."""
    rows = summary.rows.filter(pl.col("metric").is_in(list(METRICS)))
    return markdown_table(rows)

