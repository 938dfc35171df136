"""The uplift policies of the offline evaluation, their Qini/AUUC, the business report and the plots (issue 17).

Policies, on D's candidate pool, all through the same per-customer rules:

* ``p_redeem``: the ranker's lists by p(redeem) through the allocation step
  (objective ``redemptions``, the offers' caps of D): today's behaviour.
* ``uplift_margin``: the allocation under the margin objective: the best
  uplift learner's predicted uplift valued as incremental margin, offers with
  negative predicted uplift or value never shown, the same caps.
* ``p_redeem_matched``: ``p_redeem``'s lists cut to as many offers per
  customer as ``uplift_margin`` shows (the same number of offers: the fair
  comparison when the margin objective shows fewer).
* ``uplift_s``, ``uplift_t``, ``uplift_x``, ``uplift_to``: the top 10 by that
  learner's predicted uplift.
* ``oracle_uplift``, ``oracle_margin``: the top 10 by the TRUE uplift, and by
  the true incremental margin of the pair (value > 0 only; a customer whose
  list is worth less than its sleeping-dog loss is shown nothing): references.

Metrics (besides every causal metric of :mod:`.evaluation`): ``qini_true``
and ``auuc_true`` (the policy's score over every pool pair, against the true
uplift at position 1) and ``qini_logged`` (the same score on the randomised
log of D's label week: exploration slots shown in [D, D+7) against holdout
customers' pool pairs, outcome = a purchase of the product in [D, D+7)); see
:mod:`.qini`. Qini figures carry no interval (a bootstrap of a 5M-pair sort
per replicate costs more than the figure is worth; the logged one is noisy,
its size says so).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.monitoring import qini
from metro_assets.ranking.allocation import allocate_pairs, offer_caps, offer_economics
from metro_assets.ranking.scoring import score_pool, selected_model, top_k
from metro_assets.ranking.uplift import UPLIFT_KINDS, newest_uplift
from metro_assets.simulation.oracle import CHANNEL_ATTENTION, CHANNEL_SHARES, position_attention

UPLIFT_POLICIES = ("p_redeem", "p_redeem_matched", *UPLIFT_KINDS, "uplift_margin", "oracle_uplift", "oracle_margin")
QINI_METRICS = ("qini_true", "auuc_true", "qini_logged")
#: policies whose score over the pool is scored by Qini (p_redeem_matched shares p_redeem's)
QINI_POLICIES = ("p_redeem", *UPLIFT_KINDS, "uplift_margin", "oracle_uplift")
LOG_CONTROL_PER_TREATED = 3.0


@dataclass
class UpliftPolicies:
    rankings: dict[str, pl.DataFrame] = field(default_factory=dict)
    scores: pl.DataFrame | None = None        # customer_id, offer_id and each QINI policy's score
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    binding: int = 0                          # caps binding in uplift_margin's allocation


def uplift_policies(con: duckdb.DuckDBPyConnection, day: date, pool: pl.DataFrame, k: int,
                    max_per_category: int | None, budget: float | None = None) -> UpliftPolicies:
    """The uplift policies' lists and scores over ``pool`` (``customer_id``, ``offer_id``, ``product_id``,
    ``category``). Without uplift learners only ``p_redeem`` is there, and a note says why."""
    out = UpliftPolicies()
    version, model = selected_model(con, day)
    learners = {}
    for kind in UPLIFT_KINDS:
        found = newest_uplift(con, day, kind)
        if found:
            learners[kind] = found[1]
            out.versions[kind] = found[0]
    best = newest_uplift(con, day)
    if not learners:
        out.notes.append(f"no uplift learner trained on or before {day}: the uplift policies and "
                         f"{', '.join(QINI_METRICS)} are unavailable")
    scored = score_pool(con, day, model, extra=learners).rename({"score": "p_redeem"})
    econ = offer_economics(con, scored["offer_id"]).select("offer_id", "gross", "margin", "discount")
    pairs = scored.join(pool.select("customer_id", "offer_id", "product_id", "category"),
                        on=["customer_id", "offer_id"], how="inner").join(econ, on="offer_id", how="left")
    best_kind = best[1].kind if best else None
    pairs = pairs.with_columns(uplift=pl.col(best_kind) if best_kind else pl.lit(None, dtype=pl.Float64))
    caps = offer_caps(con, day, budget)
    plain = allocate_pairs(pairs, "redemptions", caps, k, max_per_category)
    out.rankings["p_redeem"] = plain.chosen.select("customer_id", "offer_id", "rank")
    out.versions["p_redeem"] = version
    scores = pairs.select("customer_id", "offer_id", "p_redeem", *learners)
    if best_kind:
        margin = allocate_pairs(pairs, "incremental_margin", caps, k, max_per_category)
        out.binding = margin.binding.height
        out.rankings["uplift_margin"] = margin.chosen.select("customer_id", "offer_id", "rank")
        out.versions["uplift_margin"] = best[0]
        counts = margin.chosen.group_by("customer_id").agg(n=pl.len())
        out.rankings["p_redeem_matched"] = (
            out.rankings["p_redeem"].join(counts, on="customer_id", how="inner")
            .filter(pl.col("rank") <= pl.col("n")).drop("n"))
        value = (pl.col("uplift") * pl.col("gross") * pl.col("margin") - pl.col("p_redeem") * pl.col("discount"))
        scores = scores.join(pairs.select("customer_id", "offer_id",
                                          uplift_margin=pl.when(pl.col("uplift") >= 0).then(value)
                                          .otherwise(value - 1e6).fill_null(-1e6)),
                             on=["customer_id", "offer_id"])
    for kind in learners:
        out.rankings[kind] = top_k(pairs, k, max_per_category, score=kind).select("customer_id", "offer_id", "rank")
    out.scores = scores
    return out


def notice_any(attention: pl.Expr) -> pl.Expr:
    """Aggregation: the chance a customer notices at least one offer of its list (``oracle.notice_any``)."""
    miss = [share * (attention * -float(channel)).clip(-1.0 + 1e-12, 0.0).log1p().sum().exp()
            for share, channel in zip(CHANNEL_SHARES, CHANNEL_ATTENTION)]
    total = miss[0]
    for m in miss[1:]:
        total = total + m
    return 1.0 - total


def add_oracles(policies: UpliftPolicies, truth: pl.DataFrame, pool: pl.DataFrame, k: int,
                max_per_category: int | None) -> None:
    """The oracle references: top k by the true uplift, and by the true incremental margin (> 0 only)."""
    x = truth.join(pool.select("customer_id", "offer_id", "product_id", "category"), on=["customer_id", "offer_id"])
    policies.rankings["oracle_uplift"] = top_k(x.with_columns(score=pl.col("uplift")), k, max_per_category) \
        .select("customer_id", "offer_id", "rank")
    margin = (pl.col("spend_effect") * pl.col("margin").fill_null(0.0)
              - pl.col("p_redeem") * pl.col("discount").fill_null(0.0))
    best = top_k(x.with_columns(score=margin).filter(pl.col("score") > 0), k, max_per_category)
    # a customer is shown its list only if the list is worth more than a sleeping dog's skipped trips
    # (a customer-level loss, charged once with the chance it notices any offer: evaluation.customer_values)
    worth = best.with_columns(a=pl.Series(position_attention(best["rank"].to_numpy()))).group_by("customer_id").agg(
        value=(pl.col("a") * pl.col("score")).sum()
        - notice_any(pl.col("a")) * (pl.col("lost_spend") * pl.col("trip_margin_rate")).max().fill_null(0.0))
    policies.rankings["oracle_margin"] = best.join(worth.filter(pl.col("value") > 0), on="customer_id", how="semi") \
        .select("customer_id", "offer_id", "rank")
    if policies.scores is not None:
        policies.scores = policies.scores.join(truth.select("customer_id", "offer_id", oracle_uplift="uplift"),
                                               on=["customer_id", "offer_id"], how="left")


def logged_units(con: duckdb.DuckDBPyConnection, day: date, seed: int = 42) -> pl.DataFrame:
    """The randomised log of D's label week over D's pool: ``customer_id``, ``offer_id``, ``treated``,
    ``purchased`` (exploration slots of [D, D+7) vs holdout customers' pool pairs; outcome in [D, D+7))."""
    end = day + timedelta(days=7)
    params = {"day": day, "end": end}
    treated = con.sql("""SELECT count(*) FROM (SELECT DISTINCT i.customer_id, i.offer_id FROM impressions i
                         SEMI JOIN candidate_pool c ON c.day = $day AND c.customer_id = i.customer_id
                                                    AND c.offer_id = i.offer_id
                         WHERE i.is_exploration AND i.day >= $day AND i.day < $end)""", params=params).fetchall()[0][0]
    holdout = con.sql("""SELECT count(*) FROM candidate_pool c JOIN experiment_assignments a
                         ON a.customer_id = c.customer_id AND a.arm = 'holdout' AND $day BETWEEN a.from_date AND a.to_date
                         WHERE c.day = $day""", params={"day": day}).fetchall()[0][0]
    rate = int(min(1.0, LOG_CONTROL_PER_TREATED * treated / holdout) * 1_000_000) if holdout else 0
    return con.sql("""
        WITH units AS (
            SELECT DISTINCT i.customer_id, i.offer_id, true AS treated FROM impressions i
            SEMI JOIN candidate_pool c ON c.day = $day AND c.customer_id = i.customer_id AND c.offer_id = i.offer_id
            WHERE i.is_exploration AND i.day >= $day AND i.day < $end
            UNION ALL
            SELECT c.customer_id, c.offer_id, false AS treated FROM candidate_pool c
            JOIN experiment_assignments a ON a.customer_id = c.customer_id AND a.arm = 'holdout'
             AND $day BETWEEN a.from_date AND a.to_date
            WHERE c.day = $day AND hash(c.customer_id, c.offer_id, $seed) % 1000000 < $rate)
        SELECT u.customer_id, u.offer_id, u.treated,
               EXISTS (SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.order_id
                       WHERE o.customer_id = u.customer_id AND i.product_id = f.product_id
                         AND o.day >= $day AND o.day < $end) AS purchased
        FROM units u JOIN offers f ON f.offer_id = u.offer_id
        ORDER BY ALL""", params={**params, "seed": seed, "rate": rate}).pl()


def qini_rows(day: date, policies: UpliftPolicies, truth: pl.DataFrame | None, log: pl.DataFrame | None
              ) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """qini_true, auuc_true, qini_logged per policy with a score; and the curves (for the plots)."""
    rows, curves = [], {"true": {}, "logged": {}}
    if policies.scores is None:
        return rows, curves
    scores = policies.scores
    if truth is not None:
        scores = scores.join(truth.select("customer_id", "offer_id", tau="uplift"), on=["customer_id", "offer_id"],
                             how="inner").sort("customer_id", "offer_id")
    logged = None
    if log is not None and log.height and log["treated"].any() and (~log["treated"]).any():
        logged = log.join(policies.scores, on=["customer_id", "offer_id"], how="inner").sort(
            "customer_id", "offer_id", "treated")
    for p in QINI_POLICIES:
        if p not in scores.columns:
            continue
        if truth is not None:
            c = qini.curve_true(scores[p].fill_null(-np.inf).to_numpy(), scores["tau"].to_numpy())
            q, a = qini.areas(c)
            curves["true"][p] = c
            rows += [_row(day, p, "qini_true", q), _row(day, p, "auuc_true", a)]
        if logged is not None and p in logged.columns:
            c = qini.curve_logged(logged[p].fill_null(-np.inf).to_numpy(), logged["treated"].to_numpy(),
                                  logged["purchased"].to_numpy())
            curves["logged"][p] = c
            rows.append(_row(day, p, "qini_logged", qini.areas(c)[0]))
    if "qini_true" in {r["metric"] for r in rows}:  # p_redeem_matched ranks the pool as p_redeem does
        rows += [dict(r, policy="p_redeem_matched") for r in rows if r["policy"] == "p_redeem"]
    return rows, curves


def _row(day: date, policy: str, metric: str, value: float) -> dict:
    return {"run_date": day, "policy": policy, "metric": metric, "value": float(value), "ci_low": None,
            "ci_high": None}


BUSINESS_METRICS = (
    ("expected_incremental_revenue_at_10", "incremental revenue"),
    ("expected_discount_cost_at_10", "discount cost"),
    ("expected_incremental_margin_at_10", "incremental margin"),
    ("roi_at_10", "ROI (margin / discount)"),
    ("expected_incremental_redemptions_at_10", "incremental purchases"),
    ("discount_on_sure_things_at_10", "discount on sure things"),
    ("sleeping_dogs_reached_at_10", "sleeping dogs deterred"),
    ("offers_shown_at_10", "offers shown"),
    ("sleeping_dog_margin_lost_at_10", "margin lost to sleeping dogs"),
)


def business_report(rows: pl.DataFrame, policies: tuple[str, ...] | None = None) -> str:
    """The daily business report: per policy, money per customer with 95% intervals (Markdown)."""
    if rows.height == 0:
        return "(nothing recorded)"
    cell = {(r["policy"], r["metric"]): r for r in rows.iter_rows(named=True)}
    names = [p for p in (policies or tuple(dict.fromkeys(rows["policy"]))) if (p, BUSINESS_METRICS[2][0]) in cell]
    header = "| policy | " + " | ".join(label for _, label in BUSINESS_METRICS) + " |"
    lines = [header, "|---" * (len(BUSINESS_METRICS) + 1) + "|"]
    for p in names:
        cells = []
        for metric, _ in BUSINESS_METRICS:
            r = cell.get((p, metric))
            if r is None:
                cells.append("")
                continue
            text = f"{r['value']:.4f}"
            if r["ci_low"] is not None and r["ci_high"] is not None:
                text += f" [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
            cells.append(text)
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, dict[str, np.ndarray]], title: str) -> bytes | None:
    """Qini curves (against the truth, and on the randomised log) as one PNG; None when there are none."""
    if not curves.get("true") and not curves.get("logged"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(kind, c) for kind, c in (("against the true uplift", curves.get("true")),
                                         ("on the randomised log", curves.get("logged"))) if c]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (label, by_policy) in zip(axes[0], panels):
        for p, c in by_policy.items():
            x, y = qini.downsample(c, 300)
            ax.plot(x, y, label=p, lw=2.2 if p in ("uplift_margin", "oracle_uplift", "p_redeem") else 1.2)
        last = next(iter(by_policy.values()))
        ax.plot([0, 1], [0, last[-1]], "k--", lw=0.8, label="random")
        ax.set_xlabel("share of pool pairs treated (best score first)")
        ax.set_ylabel("incremental purchases per pair")
        ax.set_title(label)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str = "Qini curves") -> str:
    """A PNG embedded in Markdown (the UI shows it in the materialization's metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
