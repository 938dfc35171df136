"""Offline evaluation of a run date: what each policy's top 10 causes, with bootstrap intervals.

For a run date D whose label window [D, D + 7) is in the warehouse, every
policy ranks the same customers' same candidate pools (the ``candidate_pool``
of D) through the one selection rule of serving
(:func:`metro_assets.ranking.scoring.top_k`: at most one offer per product,
``max_per_category`` per category), and is scored three ways, each value per
customer with a 95% bootstrap interval over customers (:mod:`.bootstrap`):

* **Causal** (simulated data only), over every customer of the pool, from the
  simulator's truth (:func:`metro_assets.simulation.truth.true_probabilities`):
  expected redemptions, expected incremental redemptions (what the offer
  causes) and expected incremental margin of the top 10, and the share of the
  oracle's expected redemptions; the expected redemptions and the oracle
  share again within the offers' caps (:func:`within_caps`). Plus the paired difference of the served
  model against every baseline (policy ``model_minus_<baseline>``), and of
  each other model kind against LightGBM (policy ``<kind>_minus_lightgbm``).
* **Off-policy** (:mod:`.offpolicy`): IPS and SNIPS estimates of the top 10's
  redemptions from the logged propensities, and their effective sample size;
  what a retailer can compute on its own data. Needs ``impressions.propensity``.
* **Logged outcomes** (:mod:`.metrics`): NDCG, MRR, precision, recall and
  redemption rate against the redemptions of [D, D + 7), over the customers
  who redeemed. These measure agreement with what the legacy policy showed
  (only shown offers can be redeemed), not quality: report, never rank by them.

Metrics whose inputs are missing (no simulator truth on imported data, no
propensities) are left out and a note says so. See docs/EVALUATION.md.

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
from metro_assets.monitoring import bootstrap, offpolicy
from metro_assets.monitoring import uplift_evaluation as uplift_eval
from metro_assets.ranking.allocation import allocate, offer_caps, offer_economics
from metro_assets.monitoring.metrics import K, RANKING_METRICS, per_customer_metrics
from metro_assets.ranking.scoring import MAX_PER_CATEGORY, offer_items, score_pool, selected_model, top_k
from metro_assets.simulation import oracle
from metro_assets.simulation.truth import OracleUnavailable, true_probabilities
from metro_assets.simulation.world import Shock
from metro_assets.warehouse import replace_partitions

LABEL_DAYS = 7
RANDOM_SEEDS = 5
LEGACY_DAYS = 28   # the log window the legacy policy's segment x category targeting is estimated from
MODEL_KINDS = ("lightgbm", "logistic_regression", "wide_deep", "blend")  # LightGBM first: the others pair with it
BASELINES = ("random", "popularity", "segment_popularity", "legacy", "affinity_rule", "buy_again")
#: issue 17: p_redeem, p_redeem_matched, uplift_<learner>, uplift_margin, oracle_uplift, oracle_margin
UPLIFT_POLICIES = uplift_eval.UPLIFT_POLICIES
POLICIES = ("model", *MODEL_KINDS, *BASELINES, "oracle", *UPLIFT_POLICIES)
CAUSAL_METRICS = (
    "expected_redemptions_at_10",
    "expected_incremental_redemptions_at_10",
    "expected_incremental_margin_at_10",
    "expected_discount_cost_at_10",
    "oracle_share",
)
#: The same within the offers' caps (the world never redeems an offer beyond its max_redemptions): what a
#: policy's lists can yield when shown to every pool customer on D (:func:`within_caps`).
CAPPED_METRICS = ("expected_redemptions_within_caps_at_10", "oracle_share_within_caps")
#: the causal metrics whose paired difference (model minus each baseline) is reported
PAIRED_METRICS = CAUSAL_METRICS[:3] + ("oracle_share", "oracle_share_within_caps")
#: the business report's extra causal metrics (issue 17), per evaluated customer, with intervals
BUSINESS_METRICS = (
    "expected_incremental_revenue_at_10",
    "discount_on_sure_things_at_10",
    "sleeping_dogs_reached_at_10",
    "offers_shown_at_10",
    "sleeping_dog_margin_lost_at_10",
    "roi_at_10",
)
QINI_METRICS = uplift_eval.QINI_METRICS
#: paired differences of the margin allocation against today's behaviour (policy name, minus what)
UPLIFT_PAIRS = (("uplift_margin", "p_redeem"), ("uplift_margin", "p_redeem_matched"))
OFF_POLICY_METRICS = offpolicy.METRICS
#: A denser logged outcome than redemptions (sparse real logs): the share of the top 10 whose product the
#: customer bought in [D, D+7), with or without the offer, over every scored customer; and its lift over random.
PURCHASE_METRICS = ("product_purchase_rate_at_10", "product_purchase_lift_at_10")
COUNT_METRICS = ("customers_scored", "customers_evaluated", "customers_without_redemptions", "customers_logged")
METRICS = (CAUSAL_METRICS + CAPPED_METRICS + BUSINESS_METRICS + QINI_METRICS + OFF_POLICY_METRICS + RANKING_METRICS
           + PURCHASE_METRICS + COUNT_METRICS)
PAIRS_PER_BATCH = 2_000_000  # bounds the oracle's memory on a default-scale pool
SCHEMA = {"run_date": pl.Date, "policy": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64,
          "ci_low": pl.Float64, "ci_high": pl.Float64}
#: What the pooled evaluation (:mod:`.pooling`) needs of a run date, per policy: sums over the pool's customers
#: of per-customer values, by metric family (a family whose inputs are missing stays NULL). Every pooled
#: metric is a ratio of such sums, so sums of several run dates pool them.
SUM_FAMILIES = {
    "count": ("customers",),                                                        # 1 per pool customer
    "causal": ("expected", "incremental", "margin", "discount", "oracle_expected"),  # the oracle's expected too
    "capped": ("within", "oracle_within"),                                          # the same within caps
    "logged": ("evaluated", "ndcg", "mrr", "precision", "recall", "redeemed"),       # evaluated: 1 if redeemed
    "purchase": ("purchased",),                                                     # share of the top k bought
    "off_policy": ("logged", "lists", "slots", "live", "wr", "w0", "w", "w2"),      # logged: 1 if in the log
}
QUANTITIES = tuple(q for family in SUM_FAMILIES.values() for q in family)
SUMS_SCHEMA = {"run_date": pl.Date, "policy": pl.Utf8, "replicate": pl.Int32,
               **{q: pl.Float64 for q in QUANTITIES}}


def paired_policy(baseline: str) -> str:
    """The policy name of the paired difference of the served model against ``baseline``."""
    return f"model_minus_{baseline}"


#: Model kinds compared pairwise with LightGBM (policy ``<kind>_minus_lightgbm``): does a kind beat it?
KIND_PAIRED_METRICS = ("expected_redemptions_at_10", "oracle_share")


def kind_paired_policy(kind: str) -> str:
    """The policy name of model kind ``kind``'s paired difference against LightGBM."""
    return f"{kind}_minus_lightgbm"


@dataclass
class Evaluation:
    """The outcome of evaluating one run date."""

    run_date: date
    label_start: date
    label_end: date
    complete: bool                 # was the label window fully in the warehouse
    rows: pl.DataFrame             # run_date, policy, metric, value, ci_low, ci_high (empty when not complete)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)   # policy -> model version
    #: per policy, the sums evaluation_summary pools (see :func:`pooling_sums`); empty when not complete
    sums: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SUMS_SCHEMA))
    curves: dict = field(default_factory=dict)               # Qini curves {"true"|"logged": {policy: array}}

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


def policy_scores(con: duckdb.DuckDBPyConnection, day: date, pool: pl.DataFrame,
                  economics: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The score of every pool pair under each rule-based baseline (higher is better).

    ``pool`` holds ``customer_id``, ``offer_id`` and any columns to carry
    (``product_id``, ``category``); each frame returned is the pool plus ``score``.

    * ``popularity``: the offer's redemptions before D; ``segment_popularity``:
      the same among customers of the customer's segment.
    * ``legacy``: how the logging policy targets (its documented rule, with
      the retailer's own data for what it reads): the share of its impressions
      of the last 28 days that the customer's segment got in the offer's
      category (smoothed) x (0.4 + discount depth) x the customer's
      category line share x (0.02 + bought the product before) x e^1.5 when
      the product is a regular purchase.
    * ``affinity_rule``: ``category_line_share`` (interaction_features of D) x discount depth.
    * ``buy_again``: products the customer bought on 2+ days before D come
      first, soonest due first (due = last purchase + mean gap; most overdue
      first); the other slots go by the affinity rule.
    """
    con.register("evaluation_pool", pool.select("customer_id", "offer_id").to_arrow())
    try:
        popular = _frame(con, "SELECT offer_id, count(*)::DOUBLE AS score FROM redemptions WHERE day < $day "
                              "GROUP BY ALL", day=day)
        by_segment = _frame(con, """SELECT c.segment, r.offer_id, count(*)::DOUBLE AS score
                                    FROM redemptions r JOIN customers c USING (customer_id)
                                    WHERE r.day < $day GROUP BY ALL""", day=day)
        segments = _frame(con, "SELECT customer_id, any_value(segment) AS segment FROM customers GROUP BY ALL")
        legacy = _frame(con, """
            WITH shown AS (
                SELECT c.segment, p.category, count(*) AS n
                FROM impressions i JOIN customers c ON c.customer_id = i.customer_id
                JOIN offers o ON o.offer_id = i.offer_id JOIN products p ON p.product_id = o.product_id
                WHERE i.day < $day AND i.day >= $day::DATE - $days GROUP BY ALL),
            cells AS (SELECT s.segment, p.category FROM (SELECT DISTINCT segment FROM customers) s,
                                                        (SELECT DISTINCT category FROM products) p),
            share AS (SELECT segment, category,
                             (coalesce(n, 0) + 1.0) / (sum(coalesce(n, 0) + 1.0) OVER (PARTITION BY segment)) AS share
                      FROM cells LEFT JOIN shown USING (segment, category))
            SELECT q.customer_id, q.offer_id, s.share
            FROM evaluation_pool q JOIN customers c ON c.customer_id = q.customer_id
            JOIN offers o ON o.offer_id = q.offer_id JOIN products p ON p.product_id = o.product_id
            LEFT JOIN share s ON s.segment = c.segment AND s.category = p.category""", day=day, days=LEGACY_DAYS)
        affinity = _frame(con, """SELECT q.customer_id, q.offer_id, f.category_line_share AS share,
                                         coalesce(f.bought_product_before, false)::DOUBLE AS bought_before
                                  FROM evaluation_pool q LEFT JOIN interaction_features f
                                  ON f.customer_id = q.customer_id AND f.offer_id = q.offer_id AND f.day = $day""",
                          day=day)
        regular = _frame(con, """
            WITH wanted AS (SELECT DISTINCT q.customer_id, o.product_id
                            FROM evaluation_pool q JOIN offers o ON o.offer_id = q.offer_id),
            bought AS (
                SELECT o.customer_id, i.product_id, count(DISTINCT o.day) AS days, min(o.day) AS first,
                       max(o.day) AS last
                FROM orders o JOIN order_items i ON i.order_id = o.order_id
                SEMI JOIN wanted w ON w.customer_id = o.customer_id AND w.product_id = i.product_id
                WHERE o.day < $day GROUP BY ALL HAVING count(DISTINCT o.day) >= 2)
            SELECT q.customer_id, q.offer_id,
                   (b.last - $day::DATE) + (b.last - b.first) / (b.days - 1.0) AS due_in
            FROM evaluation_pool q JOIN offers o ON o.offer_id = q.offer_id
            JOIN bought b ON b.customer_id = q.customer_id AND b.product_id = o.product_id""", day=day)
    finally:
        con.unregister("evaluation_pool")
    depth = economics.select("offer_id", "depth")
    keys = ["customer_id", "offer_id"]
    # every frame starts from the pool, so it carries the offer's product and category for top_k
    base = pool.join(depth, on="offer_id", how="left").with_columns(pl.col("depth").fill_null(0.0))
    rule = base.join(affinity, on=keys, how="left").with_columns(score=pl.col("share") * pl.col("depth"))
    scores = {
        "popularity": pool.join(popular, on="offer_id", how="left"),
        "segment_popularity": pool.join(segments, on="customer_id", how="left")
        .join(by_segment, on=["segment", "offer_id"], how="left"),
        "legacy": base.join(legacy, on=keys, how="left")
        .join(affinity.rename({"share": "line_share"}), on=keys, how="left")
        .join(regular, on=keys, how="left")
        .with_columns(score=pl.col("share") * (0.4 + pl.col("depth")) * pl.col("line_share").fill_null(0.0)
                      * (0.02 + pl.col("bought_before").fill_null(0.0))
                      * pl.when(pl.col("due_in").is_not_null()).then(np.exp(1.5)).otherwise(1.0)),
        "affinity_rule": rule,
        # regular products score in (1, 2), decreasing with days until due; the rest the rule's [0, 1]
        "buy_again": rule.join(regular, on=keys, how="left")
        .with_columns(score=pl.when(pl.col("due_in").is_not_null())
                      .then(2.0 - 1.0 / (1.0 + (-pl.col("due_in") / 7.0).exp()))
                      .otherwise(pl.col("score").fill_null(0.0).clip(0.0, 1.0))),
    }
    return {name: s.select(*pool.columns, score=pl.col("score").cast(pl.Float64).fill_null(0.0))
            for name, s in scores.items()}


def policy_rankings(con: duckdb.DuckDBPyConnection, day: date, pool: pl.DataFrame, economics: pl.DataFrame,
                    k: int = K, max_per_category: int | None = MAX_PER_CATEGORY, random_seeds: int = RANDOM_SEEDS,
                    seed: int = 42, budget: float | None = None) -> tuple[dict, dict, list[str]]:
    """Each policy's top-k over the pool: ``{policy: ranked or [ranked per seed]}``, versions, notes.

    ``pool`` holds ``customer_id``, ``offer_id``, ``product_id``, ``category``
    (the candidate pool of ``day`` with its offers' products). Every policy
    goes through :func:`top_k` with the same rules as serving. Each model kind
    other than the served one is allocated within the offers' caps (and
    ``budget``, ``METRO_OFFER_BUDGET``) with its own predicted p_redeem, as
    serving allocates under the default objective
    (:func:`metro_assets.ranking.allocation.allocate`), so every kind's row is
    the list it would serve; the baselines are plain top k (rules know no caps).
    Under ``METRO_OBJECTIVE=incremental_margin`` the served list follows that
    objective while the other kinds still maximise redemptions.
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

    def select(scored: pl.DataFrame) -> pl.DataFrame:
        if "category" not in scored.columns:  # a model's scores: only the pool's pairs, with their offers
            scored = scored.join(pool, on=["customer_id", "offer_id"], how="inner")
        return top_k(scored, k, max_per_category)

    caps = offer_caps(con, day, budget)
    discount = economics.select("offer_id", "discount")
    for kind in MODEL_KINDS:
        if kind == served_kind:
            rankings[kind], versions[kind] = rankings["model"], version
            continue
        try:
            other_version, stored = selected_model(con, day, kind=kind)
        except DataError:
            notes.append(f"no {kind} model trained on or before {day}: policy {kind} skipped")
            continue
        scored = score_pool(con, day, stored).select("customer_id", "offer_id", p_redeem="score") \
            .join(pool, on=["customer_id", "offer_id"], how="inner").join(discount, on="offer_id", how="left")
        rankings[kind] = allocated(scored, caps, k, max_per_category)
        versions[kind] = other_version

    ordered = pool.sort("customer_id", "offer_id")  # the draws must not depend on the order the query returned
    rankings["random"] = [
        select(ordered.with_columns(score=pl.Series(np.random.default_rng([seed, day.toordinal(), s])
                                                    .random(ordered.height))))
        for s in range(random_seeds)
    ]
    for name, scored in policy_scores(con, day, pool, economics).items():
        rankings[name] = select(scored)
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


def incremental(truth: pl.DataFrame) -> pl.Expr:
    """The expected incremental purchases of a pair shown at position 1: what showing the offer causes.

    The truth's ``uplift`` (World v2: negative for sleeping dogs); a truth
    without it (World v1) gives p_redeem - p_base.
    """
    if "uplift" in truth.columns:
        return pl.col("uplift").fill_null(0.0)
    return pl.col("p_redeem").fill_null(0.0) - pl.col("p_base").fill_null(0.0)


def incremental_revenue(truth: pl.DataFrame) -> pl.Expr:
    """The expected change of the customer's gross spend on the offer's product at position 1 (the truth's
    ``spend_effect``); else incremental x shelf value. A sleeping dog's skipped trips are not in it: they are
    a customer-level effect (:func:`customer_values`)."""
    if "spend_effect" in truth.columns:
        return pl.col("spend_effect").fill_null(0.0)
    return incremental(truth) * pl.col("gross")


#: The per-customer figures of :func:`customer_values`.
VALUE_COLUMNS = ("expected", "incremental", "margin", "discount", "revenue", "sure_discount", "dogs_reached",
                 "offers", "dog_margin")


notice_any = uplift_eval.notice_any  # the chance a customer notices any offer of its list


def customer_values(ranked: pl.DataFrame, truth: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """Per customer of ``customers``: what its top k causes (see :data:`VALUE_COLUMNS`).

    ``ranked`` holds ``customer_id``, ``offer_id``, ``rank``; ``truth`` holds
    ``customer_id``, ``offer_id``, ``p_redeem``, ``p_base`` (``uplift``,
    ``spend_effect``, ``lost_spend``, ``trip_margin_rate`` with World v2) and
    the :func:`offer_economics` columns, all for position 1: an offer at rank
    r gets ``oracle.position_attention(r)`` of each (lower slots are seen less).

    * ``expected``, ``incremental``: redemptions, incremental purchases.
    * ``revenue``: incremental gross revenue: the products' extra sales minus,
      for a sleeping dog, the spend of the trips it skips, charged **once per
      customer** with the chance it notices any offer of the list
      (``oracle.notice_any``: the world deters once, however many offers it notices).
    * ``margin``: incremental margin = the products' extra sales x their margin
      rate - the lost trips x the catalogue's margin rate - the discount paid on
      every expected redemption (also those the customer would have made
      anyway: the discount given to sure things).
    * ``discount``: discount paid; ``sure_discount``: the part paid on
      redemptions the offer did not cause (p_redeem - max(uplift, 0), at least 0).
    * ``dogs_reached``: the chance the customer is a sleeping dog deterred by the list.
    * ``offers``: offers in the list.
    * ``dog_margin``: the margin of the trips a sleeping dog skips (part of ``margin``, as a loss).

    Customers without a ranked pair get zeros.
    """
    attention = pl.Series(oracle.position_attention(ranked["rank"].to_numpy()))
    x = ranked.select("customer_id", "offer_id", attention=attention).join(
        truth, on=["customer_id", "offer_id"], how="inner")
    p = pl.col("p_redeem").fill_null(0.0)
    dog = "lost_spend" in truth.columns
    lost = pl.col("lost_spend").fill_null(0.0) if dog else pl.lit(0.0)
    trip_margin = pl.col("trip_margin_rate").fill_null(0.0) if dog else pl.lit(0.0)
    x = x.select(
        "customer_id",
        pl.col("attention"),
        expected=p,
        incremental=incremental(truth),
        product_margin=incremental_revenue(truth) * pl.col("margin") - p * pl.col("discount"),
        product_revenue=incremental_revenue(truth),
        discount=p * pl.col("discount"),
        sure_discount=(p - incremental(truth).clip(lower_bound=0.0)).clip(lower_bound=0.0) * pl.col("discount"),
        lost=lost,
        lost_margin=lost * trip_margin,
    )
    a = pl.col("attention")
    sums = x.group_by("customer_id").agg(
        *[(pl.col(c) * a).sum().alias(c) for c in ("expected", "incremental", "product_margin", "product_revenue",
                                                   "discount", "sure_discount")],
        noticed=notice_any(a), lost=pl.col("lost").max(), lost_margin=pl.col("lost_margin").max(),
        offers=pl.len().cast(pl.Float64),
    ).select(
        "customer_id", "expected", "incremental", "discount", "sure_discount", "offers",
        margin=pl.col("product_margin") - pl.col("noticed") * pl.col("lost_margin"),
        revenue=pl.col("product_revenue") - pl.col("noticed") * pl.col("lost"),
        dogs_reached=pl.when(pl.col("lost") > 0).then(pl.col("noticed")).otherwise(0.0),
        dog_margin=pl.col("noticed") * pl.col("lost_margin"),
    )
    names = list(VALUE_COLUMNS)
    return customers.join(sums, on="customer_id", how="left").with_columns(pl.col(names).fill_null(0.0)) \
        .select("customer_id", *names).sort("customer_id")


def within_caps(ranked: pl.DataFrame, truth: pl.DataFrame, customers: pl.DataFrame,
                caps: pl.DataFrame) -> pl.DataFrame:
    """Per customer of ``customers``: the expected redemptions of its top k that the offers' caps leave room for.

    The world never redeems an offer beyond its ``max_redemptions``. Shown to
    every customer of the pool on D, a policy's lists expect Σ attention(rank)
    x p_redeem redemptions of each offer; where that exceeds what is left of
    a capped offer (``remaining_redemptions`` of
    :func:`metro_assets.ranking.allocation.offer_caps`), every pair of the
    offer is scaled by remaining / expected, so the offer yields exactly what
    is left, shared in proportion. A policy that fills slots with offers the
    caps will not honour gets nothing for them; the served model's allocation
    avoids that with its predicted p_redeem. Customers without a ranked pair get 0.

    Examples
    --------
    >>> ranked = pl.DataFrame({"customer_id": [1, 2], "offer_id": [7, 7], "rank": [1, 1]})
    >>> truth = pl.DataFrame({"customer_id": [1, 2], "offer_id": [7, 7], "p_redeem": [0.6, 0.2]})
    >>> caps = pl.DataFrame({"offer_id": [7], "remaining_redemptions": [0.4]})
    >>> within_caps(ranked, truth, pl.DataFrame({"customer_id": [1, 2, 3]}), caps)["within"].round(2).to_list()
    [0.3, 0.1, 0.0]
    """
    attention = pl.Series(oracle.position_attention(ranked["rank"].to_numpy()))
    x = ranked.select("customer_id", "offer_id", attention=attention).join(
        truth.select("customer_id", "offer_id", "p_redeem"), on=["customer_id", "offer_id"], how="inner"
    ).with_columns(e=pl.col("attention") * pl.col("p_redeem").fill_null(0.0)).sort("customer_id", "offer_id")
    remaining = pl.col("remaining_redemptions").clip(lower_bound=0.0)
    # sorted rows and ordered groups: the same lists give bit-identical sums (the served kind is the model)
    scale = (x.group_by("offer_id", maintain_order=True).agg(total=pl.col("e").sum())
             .join(caps.select(pl.col("offer_id").cast(x.schema["offer_id"]), "remaining_redemptions"),
                   on="offer_id", how="left")
             .select("offer_id", f=pl.when(pl.col("total") > remaining).then(remaining / pl.col("total"))
                     .otherwise(1.0)))
    sums = x.join(scale, on="offer_id", how="left", maintain_order="left").group_by(
        "customer_id", maintain_order=True).agg(within=(pl.col("e") * pl.col("f")).sum())
    return customers.join(sums, on="customer_id", how="left").with_columns(pl.col("within").fill_null(0.0)) \
        .select("customer_id", "within").sort("customer_id")


def oracle_within_caps(truth: pl.DataFrame, pool: pl.DataFrame, caps: pl.DataFrame, k: int = K,
                       max_per_category: int | None = MAX_PER_CATEGORY) -> pl.DataFrame:
    """The oracle within caps: the true p_redeem allocated within every offer's remaining redemptions.

    The same allocation as serving (:func:`metro_assets.ranking.allocation.allocate`),
    fed the truth instead of a model's predictions. It is greedy and charges a
    pair its position-1 p_redeem against the cap, so it is a good feasible
    solution, not a proven optimum: a policy could in principle exceed it.
    """
    pairs = truth.select("customer_id", "offer_id", "p_redeem").join(pool, on=["customer_id", "offer_id"])
    return allocated(pairs, caps, k, max_per_category)


def allocated(pairs: pl.DataFrame, caps: pl.DataFrame, k: int = K,
              max_per_category: int | None = MAX_PER_CATEGORY) -> pl.DataFrame:
    """``customer_id``, ``offer_id``, ``rank`` of the lists that maximise ``p_redeem`` within ``caps``.

    ``pairs`` holds the pool's ``customer_id``, ``offer_id``, ``product_id``,
    ``category``, ``p_redeem`` and optionally ``discount`` (for a budget cap;
    0 without it): serving's allocation under the default objective.
    """
    discount = pl.col("discount").fill_null(0.0) if "discount" in pairs.columns else pl.lit(0.0)
    return allocate(pairs.with_columns(value=pl.col("p_redeem"), discount=discount), k, max_per_category, caps) \
        .chosen.select("customer_id", "offer_id", "rank")


def _runs(ranking) -> list[pl.DataFrame]:
    return ranking if isinstance(ranking, list) else [ranking]


def _averaged(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Per-customer values averaged over the random policy's seeds (one frame: itself)."""
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames).group_by("customer_id").agg(pl.all().mean()).sort("customer_id")


def _keep(per: dict | None, family: str, frames: dict[str, pl.DataFrame]) -> None:
    """Deposit each policy's per-customer values of a metric family in ``per`` (for the pooled sums)."""
    if per is not None:
        for policy, frame in frames.items():
            per.setdefault(policy, {})[family] = frame


def _row(day: date, policy: str, metric: str, value: float, low: float | None = None,
         high: float | None = None) -> dict:
    finite = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
    return {"run_date": day, "policy": policy, "metric": metric, "value": float(value),
            "ci_low": finite(low), "ci_high": finite(high)}


def causal_rows(day: date, rankings: dict, truth: pl.DataFrame, customers: pl.DataFrame,
                replicates: int, seed: list[int], per: dict | None = None, caps: pl.DataFrame | None = None,
                oracle_allocated: pl.DataFrame | None = None) -> list[dict]:
    """Causal metrics per policy and the model's paired differences against every baseline, with intervals.

    All come from one set of bootstrap weights over the pool's customers, so
    every difference is paired and the oracle share's interval accounts for
    the oracle's own uncertainty. With ``caps`` (:func:`offer_caps` of D) the
    :data:`CAPPED_METRICS` too (:func:`within_caps`); the oracle's figure
    within caps is that of ``oracle_allocated``, the true p_redeem
    allocated within the caps, when given.
    The bootstrap keeps each offer's scale of D fixed.
    """
    names = ("expected", "incremental", "margin", "discount")
    values = {p: _averaged([customer_values(r, truth, customers) for r in _runs(rankings[p])])
              for p in POLICIES if p in rankings}
    _keep(per, "causal", values)
    policies = list(values)
    oracle_expected = values["oracle"]["expected"].to_numpy()[:, None]
    capped: dict[str, pl.DataFrame] = {}
    if caps is not None:
        capped = {p: _averaged([within_caps(r, truth, customers, caps) for r in _runs(rankings[p])])
                  for p in policies}
        if oracle_allocated is not None:
            capped["oracle"] = within_caps(oracle_allocated, truth, customers, caps)
    _keep(per, "capped", capped)
    within = {p: frame["within"].to_numpy() for p, frame in capped.items()}
    oracle_within = within.get("oracle", np.zeros(len(customers)))[:, None]
    columns, labels = [], []
    for p in policies:
        for metric, name in zip(CAUSAL_METRICS[:4], names):
            columns.append(values[p][name].to_numpy())
            labels.append((p, metric, "mean"))
        columns.append(values[p]["expected"].to_numpy())
        labels.append((p, "oracle_share", "share"))
        if within:
            columns += [within[p], within[p]]
            labels += [(p, CAPPED_METRICS[0], "mean"), (p, CAPPED_METRICS[1], "share_caps")]
        for metric, name in zip(BUSINESS_METRICS[:5], ("revenue", "sure_discount", "dogs_reached", "offers",
                                                        "dog_margin")):
            columns.append(values[p][name].to_numpy())
            labels.append((p, metric, "mean"))
        columns += [values[p]["margin"].to_numpy(), values[p]["discount"].to_numpy()]  # ROI: a ratio of sums
        labels += [(p, "roi_at_10", "roi"), (p, None, "den")]
    for a, b in UPLIFT_PAIRS:
        if a in values and b in values:
            for metric, name in zip(PAIRED_METRICS[:3], names):
                columns.append(values[a][name].to_numpy() - values[b][name].to_numpy())
                labels.append((f"{a}_minus_{b}", metric, "mean"))
    if "model" in values:
        for b in BASELINES:
            if b not in values:
                continue
            for metric, name in zip(PAIRED_METRICS[:3], names):
                columns.append(values["model"][name].to_numpy() - values[b][name].to_numpy())
                labels.append((paired_policy(b), metric, "mean"))
            columns.append(values["model"]["expected"].to_numpy() - values[b]["expected"].to_numpy())
            labels.append((paired_policy(b), "oracle_share", "share"))
            if within:
                columns.append(within["model"] - within[b])
                labels.append((paired_policy(b), CAPPED_METRICS[1], "share_caps"))
    if "lightgbm" in values:  # every other model kind against LightGBM, paired the same way
        for kind in MODEL_KINDS[1:]:
            if kind in values:
                diff = values[kind]["expected"].to_numpy() - values["lightgbm"]["expected"].to_numpy()
                for metric in KIND_PAIRED_METRICS:
                    columns.append(diff)
                    labels.append((kind_paired_policy(kind), metric, "share" if metric == "oracle_share" else "mean"))
    x = np.column_stack(columns)
    # one bootstrap: sums of every column and of the three denominators (customers, the oracle's expected
    # redemptions, and the same within caps)
    den = np.hstack([np.ones((len(x), 1)), oracle_expected, oracle_within])
    point_sums = np.r_[x.sum(axis=0), den.sum(axis=0)]
    reps = bootstrap.replicate_sums(np.hstack([x, den]), replicates, seed)
    m = x.shape[1]
    # a column's denominator: customers, an oracle total, or for a ROI the next column's sum (the discount)
    index = np.array([m + 1 if kind == "share" else m + 2 if kind == "share_caps" else i + 1 if kind == "roi"
                      else m for i, (_, _, kind) in enumerate(labels)])
    with np.errstate(divide="ignore", invalid="ignore"):
        point = point_sums[:m] / point_sums[index]
        ratio = reps[:, :m] / reps[:, index]
    low, high = bootstrap.interval(ratio)
    return [_row(day, p, metric, point[i], low[i], high[i])
            for i, (p, metric, kind) in enumerate(labels) if kind != "den" and np.isfinite(point[i])]


def logged_rows(day: date, rankings: dict, relevant: pl.DataFrame, scored: pl.Series, k: int,
                replicates: int, seed: list[int], per_policy: dict | None = None) -> list[dict]:
    """NDCG, MRR, precision, recall, redemption rate at k over the customers who redeemed, with intervals."""
    columns = ("ndcg", "mrr", "precision", "recall", "redeemed")
    rows = []
    for p in POLICIES:
        if p not in rankings:
            continue
        per = _averaged([per_customer_metrics(r, relevant, scored, k).select("customer_id", *columns)
                         for r in _runs(rankings[p])])
        _keep(per_policy, "logged", {p: per})
        if per.height == 0:
            rows += [_row(day, p, m, 0.0) for m in RANKING_METRICS]
            continue
        point, low, high = bootstrap.mean_ci(per.select(columns).to_numpy(), replicates, seed)
        rows += [_row(day, p, m, point[i], low[i], high[i]) for i, m in enumerate(RANKING_METRICS)]
    return rows


def purchase_rows(day: date, rankings: dict, bought: pl.DataFrame, items: pl.DataFrame, customers: pl.DataFrame,
                  k: int, replicates: int, seed: list[int], per_policy: dict | None = None) -> list[dict]:
    """Each policy's share of its top k whose product the customer bought in the label week, and the lift of
    that share over the random policy's (a relevance measure that works with few redemptions: it says who
    wanted the product, not what the offer caused)."""
    hits = bought.select("customer_id", "product_id").unique().with_columns(hit=pl.lit(1.0))
    rates = {}
    rows = []
    for p in POLICIES:
        if p not in rankings:
            continue
        per = _averaged([
            customers.join(
                r.select("customer_id", "offer_id").join(items, on="offer_id", how="left")
                .join(hits, on=["customer_id", "product_id"], how="left")
                .group_by("customer_id").agg(rate=pl.col("hit").fill_null(0.0).sum() / k),
                on="customer_id", how="left").with_columns(pl.col("rate").fill_null(0.0))
            for r in _runs(rankings[p])])
        _keep(per_policy, "purchase", {p: per})
        point, low, high = bootstrap.mean_ci(per["rate"].to_numpy(), replicates, seed)
        rates[p] = float(point[0])
        rows.append(_row(day, p, PURCHASE_METRICS[0], point[0], low[0], high[0]))
    if rates.get("random"):
        rows += [_row(day, p, PURCHASE_METRICS[1], rate / rates["random"]) for p, rate in rates.items()]
    return rows


def off_policy_rows(day: date, rankings: dict, log: pl.DataFrame, economics: pl.DataFrame,
                    replicates: int, seed: list[int], per_policy: dict | None = None) -> tuple[list[dict], int]:
    """IPS, SNIPS and ESS of each policy's top k from the log of D's week; rows and clipped weights."""
    dates = economics.select("offer_id", "start_date", "end_date")
    rows, clipped = [], 0
    for p in POLICIES:
        if p not in rankings:
            continue
        runs, frames = [], []
        for r in _runs(rankings[p]):
            per = offpolicy.per_customer(log, r.select("customer_id", "offer_id", "rank").join(dates, on="offer_id"))
            clipped = max(clipped, int(per["clipped"].sum()))
            runs.append(offpolicy.estimates(per, replicates, seed))
            frames.append(per)
        _keep(per_policy, "off_policy", {p: _averaged(frames)})
        if not all(runs):
            continue
        # the random policy: each seed's estimate and interval, averaged
        rows += [_row(day, p, m, *np.mean([run[m] for run in runs], axis=0)) for m in OFF_POLICY_METRICS]
    return rows, clipped


def evaluate(con: duckdb.DuckDBPyConnection, day: date, k: int = K, random_seeds: int = RANDOM_SEEDS,
             seed: int = 42, shock: Shock | None = None, max_per_category: int | None = MAX_PER_CATEGORY,
             replicates: int = bootstrap.REPLICATES, budget: float | None = None) -> Evaluation:
    """Evaluate the recommendations of run date ``day`` and the baselines on the same pools.

    Returns an :class:`Evaluation`; when the label window is not fully in the
    warehouse it is ``complete=False`` with no rows (nothing to record yet).

    Raises
    ------
    DataError
        The day has no candidate pool or no recommendations.
    """
    start, end, complete = label_window(con, day)
    empty = pl.DataFrame(schema=SCHEMA)
    if not complete:
        note = (f"label window {start}..{end - timedelta(days=1)} is not fully in the warehouse: "
                f"nothing recorded; evaluate {day} again once the raw data of those days exists")
        return Evaluation(day, start, end, False, empty, [note])
    pool = _frame(con, "SELECT DISTINCT customer_id, offer_id FROM candidate_pool WHERE day = $day", day=day)
    if pool.height == 0:
        raise DataError(f"no candidate_pool for {day}: materialize the daily pipeline for {day} first")
    pool = pool.join(offer_items(con), on="offer_id", how="left")
    economics = offer_economics(con, pool["offer_id"])
    rankings, versions, notes = policy_rankings(con, day, pool, economics, k, max_per_category, random_seeds, seed,
                                                budget)
    uplift = uplift_eval.uplift_policies(con, day, pool, k, max_per_category, budget)
    rankings.update(uplift.rankings)
    versions.update(uplift.versions)
    notes += uplift.notes
    scored = pool["customer_id"].unique().sort()
    customers = pl.DataFrame({"customer_id": scored})
    boot = [seed, day.toordinal()]
    rows: list[dict] = []
    per: dict[str, dict[str, pl.DataFrame]] = {}  # policy -> metric family -> per-customer values (pooling)

    try:
        truth = pool_truth(con, day, shock).join(economics, on="offer_id", how="left")
    except OracleUnavailable as exc:
        truth = None
        notes.append(f"{exc}: the causal metrics ({', '.join(CAUSAL_METRICS)}), the paired differences and "
                     "the oracle policy are unavailable")
    if truth is not None:
        rankings["oracle"] = top_k(truth.select("customer_id", "offer_id", score="p_redeem")
                                   .join(pool, on=["customer_id", "offer_id"]), k, max_per_category)
        uplift_eval.add_oracles(uplift, truth, pool, k, max_per_category)
        rankings.update(uplift.rankings)
        caps = offer_caps(con, day)
        rows += causal_rows(day, rankings, truth, customers, replicates, boot + [1], per, caps,
                            oracle_within_caps(truth, pool, caps, k, max_per_category))

    missing = offpolicy.log_columns_missing(con)
    log = offpolicy.logged_lists(con, day) if not missing else None
    logged_customers = 0
    if missing:
        notes.append(f"impressions have no {', '.join(missing)} column: the off-policy metrics "
                     f"({', '.join(OFF_POLICY_METRICS)}) are unavailable")
    elif log.height == 0:
        notes.append(f"no impression with a propensity in the week up to {day}: the off-policy metrics are unavailable")
    else:
        opr, clipped = off_policy_rows(day, rankings, log, economics, replicates, boot + [3], per)
        rows += opr
        logged_customers = log.join(customers, on="customer_id", how="semi")["customer_id"].n_unique()
        if clipped:
            notes.append(f"{clipped} importance weights clipped at {offpolicy.MAX_WEIGHT:g} (off-policy estimates "
                         "are biased down where the clip binds)")

    randomised = (not missing and con.sql("SELECT count(*) FROM experiment_assignments WHERE arm = 'holdout' "
                                          "AND $d BETWEEN from_date AND to_date", params={"d": day}).fetchall()[0][0])
    units = uplift_eval.logged_units(con, day, seed) if randomised else None
    if not randomised:
        notes.append("no exploration slots or holdout customers for this day: qini_logged is unavailable")
    qrows, curves = uplift_eval.qini_rows(day, uplift, truth, units)
    rows += qrows

    relevant = _frame(con, "SELECT DISTINCT customer_id, offer_id FROM redemptions WHERE day >= $s AND day < $e",
                      s=start, e=end)
    evaluated = relevant.join(customers, on="customer_id", how="semi")
    rows += logged_rows(day, rankings, evaluated, scored, k, replicates, boot + [2], per)
    bought = _frame(con, """SELECT DISTINCT o.customer_id, i.product_id FROM orders o
                            JOIN order_items i ON i.order_id = o.order_id WHERE o.day >= $s AND o.day < $e""",
                    s=start, e=end)
    rows += purchase_rows(day, rankings, bought, offer_items(con).select("offer_id", "product_id"), customers,
                          k, replicates, boot + [4], per)
    counts = {"customers_scored": float(scored.len()),
              "customers_evaluated": float(evaluated["customer_id"].n_unique())}
    counts["customers_without_redemptions"] = counts["customers_scored"] - counts["customers_evaluated"]
    if log is not None:
        counts["customers_logged"] = float(logged_customers)  # pool customers in the log of D's week
    rows += [_row(day, p, m, v) for p in POLICIES if p in rankings for m, v in counts.items()]
    out = pl.DataFrame(rows, schema=SCHEMA) if rows else empty
    sums = pooling_sums(day, customer_table(per, customers), replicates, seed)
    return Evaluation(day, start, end, True, out, notes, versions, sums, curves)


def customer_table(per: dict[str, dict[str, pl.DataFrame]], customers: pl.DataFrame) -> pl.DataFrame:
    """One row per (policy, pool customer) with the :data:`QUANTITIES` of the families ``per`` holds.

    ``per`` maps policy -> family -> the per-customer frame the metric's rows
    were computed from (``causal_rows`` and the others deposit them), so the
    pooled figures and the day's own figures come from the same values.
    Customers missing from a family's frame (no redemption, not in the log) get 0.
    """
    oracle = per.get("oracle", {}).get("causal")
    frames = []
    for policy in POLICIES:
        families = per.get(policy)
        if not families:
            continue
        x = customers.select("customer_id", customers=pl.lit(1.0))
        present = ["customers"]
        if "causal" in families and oracle is not None:
            x = x.join(families["causal"].select("customer_id", "expected", "incremental", "margin", "discount"),
                       on="customer_id", how="left") \
                .join(oracle.select("customer_id", oracle_expected="expected"), on="customer_id", how="left")
            present += SUM_FAMILIES["causal"]
        capped = per.get("oracle", {}).get("capped")
        if "capped" in families and capped is not None:
            x = x.join(families["capped"].select("customer_id", "within"), on="customer_id", how="left") \
                .join(capped.select("customer_id", oracle_within="within"), on="customer_id", how="left")
            present += SUM_FAMILIES["capped"]
        if "logged" in families:
            x = x.join(families["logged"].select("customer_id", "ndcg", "mrr", "precision", "recall", "redeemed",
                                                 evaluated=pl.lit(1.0)), on="customer_id", how="left")
            present += SUM_FAMILIES["logged"]
        if "purchase" in families:
            x = x.join(families["purchase"].select("customer_id", purchased="rate"), on="customer_id", how="left")
            present += SUM_FAMILIES["purchase"]
        if "off_policy" in families:
            x = x.join(families["off_policy"].select("customer_id", "lists", "slots", "live", "wr", "w0", "w", "w2",
                                                     logged=(pl.col("lists") > 0).cast(pl.Float64)),
                       on="customer_id", how="left")
            present += SUM_FAMILIES["off_policy"]
        frames.append(x.select(
            "customer_id", policy=pl.lit(policy),
            **{q: pl.col(q).cast(pl.Float64).fill_null(0.0) if q in present else pl.lit(None, pl.Float64)
               for q in QUANTITIES}))
    if not frames:
        return pl.DataFrame(schema={"customer_id": pl.Int64, "policy": pl.Utf8, **{q: pl.Float64 for q in QUANTITIES}})
    return pl.concat(frames)


def pooling_sums(day: date, table: pl.DataFrame, replicates: int = bootstrap.REPLICATES,
                 seed: int = 42) -> pl.DataFrame:
    """The rows of ``evaluation_sums`` for ``day``: per policy, the sums of :func:`customer_table`'s columns,
    unweighted (replicate 0) and under each of ``replicates`` bootstrap weights keyed on the customer id
    (:func:`.bootstrap.keyed_weights`, the same on every run date, so summing days resamples customers)."""
    if table.height == 0:
        return pl.DataFrame(schema=SUMS_SCHEMA)
    policies = [p for p in POLICIES if p in set(table["policy"])]
    # every policy's rows cover the same customers: one matrix, policies side by side, one bootstrap
    blocks = [table.filter(pl.col("policy") == p).sort("customer_id") for p in policies]
    ids = blocks[0]["customer_id"].to_numpy()
    x = np.hstack([b.select(QUANTITIES).fill_null(0.0).to_numpy() for b in blocks])
    sums = bootstrap.keyed_replicate_sums(x, ids, replicates, seed)
    q = len(QUANTITIES)
    out = []
    for i, (p, b) in enumerate(zip(policies, blocks)):
        missing = {c for c in QUANTITIES if b[c].null_count() == b.height}  # a family without inputs stays NULL
        out.append(pl.DataFrame({
            "run_date": [day] * (replicates + 1), "policy": [p] * (replicates + 1),
            "replicate": np.arange(replicates + 1, dtype=np.int32),
            **{c: [None] * (replicates + 1) if c in missing else sums[:, i * q + j] for j, c in enumerate(QUANTITIES)},
        }, schema=SUMS_SCHEMA))
    return pl.concat(out)


def write_evaluation(con: duckdb.DuckDBPyConnection, evaluation: Evaluation) -> int:
    """Replace the run date's rows of ``offline_evaluation`` and ``evaluation_sums`` (one transaction, only for
    a complete window); rows of ``offline_evaluation`` written."""
    if not evaluation.complete:
        return 0
    day = evaluation.run_date
    return replace_partitions(con, {"offline_evaluation": evaluation.rows, "evaluation_sums": evaluation.sums},
                              day, day + timedelta(days=1), column="run_date")["offline_evaluation"]


def _order(rows: pl.DataFrame) -> list[str]:
    present = set(rows["policy"])
    policies = [p for p in POLICIES if p in present]
    return (policies + [paired_policy(b) for b in BASELINES if paired_policy(b) in present]
            + [kind_paired_policy(k) for k in MODEL_KINDS[1:] if kind_paired_policy(k) in present]
            + [f"{a}_minus_{b}" for a, b in UPLIFT_PAIRS if f"{a}_minus_{b}" in present])


def wide_table(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per metric (in :data:`METRICS` order), one column per policy: the values."""
    if rows.height == 0:
        return pl.DataFrame({"metric": []}, schema={"metric": pl.Utf8})
    wide = rows.pivot(on="policy", index="metric", values="value", aggregate_function="first")
    order = pl.DataFrame({"metric": list(METRICS), "order": range(len(METRICS))})
    return wide.join(order, on="metric", how="left").sort("order", nulls_last=True).select(["metric", *_order(rows)])


def _format(metric: str, v: float | None) -> str:
    if v is None:
        return ""
    if metric.startswith("customers") or metric == "ess":
        return f"{v:,.0f}"
    return f"{v:.4f}"


def markdown_table(rows: pl.DataFrame, intervals: bool = True) -> str:
    """Metrics as rows, policies as columns, as Markdown: ``value [ci_low, ci_high]`` where there is an interval."""
    if rows.height == 0:
        return "(nothing recorded)"
    cell = {(r["policy"], r["metric"]): r for r in rows.iter_rows(named=True)}
    policies = _order(rows)
    metrics = [m for m in METRICS if m in set(rows["metric"])]
    lines = ["| metric | " + " | ".join(policies) + " |", "|---" * (len(policies) + 1) + "|"]
    for m in metrics:
        cells = []
        for p in policies:
            r = cell.get((p, m))
            text = "" if r is None else _format(m, r["value"])
            if r is not None and intervals and r["ci_low"] is not None and m != "ess":
                text += f" [{_format(m, r['ci_low'])}, {_format(m, r['ci_high'])}]"
            cells.append(text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
