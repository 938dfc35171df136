"""Why this offer? Plain-phrase reasons for each served recommendation, from the model's own contributions.

After the top 10 is chosen, the served rows (never the whole pool) are
explained by the model that scored them (:meth:`models.LoadedModel.explain`:
each feature's contribution to the row's log-odds). Contributions are summed
into *reason groups* (features that tell one story: the category's share of
the customer's shopping, the discount, the purchase cycle...), and each
group's phrase comes from the one template table, :data:`TEMPLATES`, filled
from the row's feature values and the catalogue's names. The strongest
positive groups that have a phrase, at most :data:`MAX_REASONS` and each
worth at least :data:`MIN_LOG_ODDS`, are the row's reasons, strongest first.

A row without any (a model kind with no explainer, or no positive group with
a true phrase) gets one reason from its candidate strategy
(:data:`FALLBACKS`): every served row has at least one reason. A phrase is
only used when the row's values make it true ("you buy Dairy on most
shopping trips" needs the category in half the customer's orders): a
positive contribution with no true phrase is skipped, not dressed up.

Everything is vectorised: one Polars expression per group (a when/then chain
over its templates), evaluated only on the rows where that group is worth a
reason, and one sort; no loop over rows. Ties between groups break by their
order in :data:`GROUPS`, so the reasons are deterministic.

Cost, default scale (490k served rows, a 2-core box at load 15-25): 10-15 s
with the logistic regression, 41-51 s with LightGBM (its path contributions,
:func:`models.explain_lightgbm`; TreeSHAP would take 4-27 minutes).

Examples
--------
>>> import numpy as np, polars as pl
>>> from metro_assets.ranking.models import Contributions
>>> facts = pl.DataFrame({"customer_id": [1], "offer_id": [7], "strategy": ["category_affinity"],
...                       "category": ["Dairy"], "discount_type": ["percentage"], "discount_value": [30.0],
...                       "category_affinity_score": [0.6], "discount_depth": [0.3]})
>>> c = Contributions(["category_affinity_score", "discount_depth"], np.array([[0.8, 0.3]]), np.zeros(1))
>>> reasons_from(facts, c)["reasons"].to_list()
[['you buy Dairy on most shopping trips', '30% off']]
>>> reasons_from(facts, None)["reasons"].to_list()  # a kind without an explainer: the strategy's reason
[['from Dairy, one of the categories you buy most']]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import polars as pl

from metro_assets.features.compute import MODEL_FEATURES, SEGMENTS, stored_matrix
from metro_assets.ranking import models
from metro_assets.warehouse import read_sql

#: Most reasons per recommendation.
MAX_REASONS = 3
#: The smallest group contribution (log-odds) that counts as a reason: +0.05 raises the odds by ~5%.
MIN_LOG_ODDS = 0.05

#: Reason group -> the features whose contributions it sums (a feature in no group gives no reason).
GROUPS: dict[str, tuple[str, ...]] = {
    "category": ("category_line_share", "log_category_line_share", "category_affinity_score",
                 "log_expected_line_share"),
    "cycle": ("days_since_last_purchase_in_category", "days_since_regular_purchase_in_category"),
    "product": ("bought_product_before", "product_purchase_days", "days_since_product_purchase",
                "product_due_ratio"),
    "popular": ("product_share_in_category", "log_product_share_in_category", "product_share_in_brand"),
    "brand": ("brand_affinity", "brand_line_share"),
    "discount": ("discount_depth", "margin_impact", "discount_percentage", "discount_fixed_amount", "discount_bogo"),
    "deeper": ("discount_depth_vs_usual",),
    "deal_match": ("price_sensitivity_match", "depth_promo_match"),
    "promo": ("promo_affinity", "promo_affinity_all", "promo_log_odds", "avg_discount_depth_used"),
    "offers_used": ("redemption_rate",),
    "shopper": ("recency_days", "frequency", "monetary", "avg_basket_size", "category_entropy", "days_since_join"),
    "segment": tuple(f"segment_{s}" for s in SEGMENTS),
    "offer_record": ("historical_redemption_rate", "impressions_before", "redemptions_before", "days_until_expiry"),
}
GROUP_OF = {feature: group for group, features in GROUPS.items() for feature in features}

#: How a segment is named in a phrase.
SEGMENT_NAMES = {"budget": "budget", "premium": "premium", "family": "family", "horeca": "hotel and restaurant"}

#: The columns a template may read: the model features and the catalogue facts (:func:`reason_facts`).
FACT_COLUMNS = {
    **{f: pl.Float64 for f in MODEL_FEATURES},
    "strategy": pl.Utf8, "category": pl.Utf8, "brand": pl.Utf8, "discount_type": pl.Utf8,
    "discount_value": pl.Float64, "product_name": pl.Utf8, "segment": pl.Utf8,
}


def _col(name: str) -> pl.Expr:
    return pl.col(name)


def _int(expr: pl.Expr) -> pl.Expr:
    """A number as whole-number text."""
    return expr.round(0).cast(pl.Int64, strict=False).cast(pl.Utf8)  # inf, NaN: null (all branches run)


def _number(expr: pl.Expr) -> pl.Expr:
    """30.0 -> '30', 12.5 -> '12.5'."""
    return pl.when(expr == expr.round(0)).then(_int(expr)).otherwise(expr.round(1).cast(pl.Utf8))


def _money(expr: pl.Expr) -> pl.Expr:
    """1.5 -> '1.50'."""
    cents = (expr * 100).round(0).cast(pl.Int64, strict=False)
    return pl.format("{}.{}", (cents // 100).cast(pl.Utf8), (cents % 100).cast(pl.Utf8).str.zfill(2))


def _days_ago(days: pl.Expr) -> pl.Expr:
    return pl.when(days.round(0) <= 1).then(pl.lit("yesterday")).otherwise(pl.format("{} days ago", _int(days)))


def _every(interval_days: pl.Expr) -> pl.Expr:
    """'every 4 days', 'every 3 weeks'."""
    n = interval_days.round(0)
    return (pl.when(n <= 1).then(pl.lit("every day"))
            .when(n < 11).then(pl.format("every {} days", _int(n)))
            .otherwise(pl.format("every {} weeks", _int(interval_days / 7))))


def _category() -> pl.Expr:
    """The category as a phrase names it: 'bbq_grill' -> 'bbq grill'."""
    return _col("category").str.replace_all("_", " ", literal=True)


def _segment_name() -> pl.Expr:
    return _col("segment").replace_strict(SEGMENT_NAMES, default=None)


#: Orders in the 90 days before D that held the offer's category, and the days between them.
CATEGORY_ORDERS = (_col("category_affinity_score") * _col("frequency")).round(0)
CATEGORY_INTERVAL = pl.when(CATEGORY_ORDERS >= 1).then(90.0 / CATEGORY_ORDERS)
SINCE_CATEGORY = pl.coalesce(_col("days_since_regular_purchase_in_category"),
                             _col("days_since_last_purchase_in_category"))
#: The customer's mean days between purchases of the product (known from 2 purchase days on).
PRODUCT_INTERVAL = _col("days_since_product_purchase") / _col("product_due_ratio")
#: A product with at least this share of its category's lines is called popular (twice a 100-product category's
#: mean). The reason shows only where popularity raised the row's score, i.e. above the category's usual share.
POPULAR_SHARE = 0.02


@dataclass(frozen=True)
class Template:
    """One phrase: used for a row when its group is among the row's strongest and ``when`` holds."""

    name: str
    group: str
    when: pl.Expr
    phrase: pl.Expr


#: The one template table. Within a group the first template whose ``when`` holds is the phrase.
TEMPLATES: list[Template] = [
    Template("category_most_trips", "category", _col("category_affinity_score") >= 0.5,
             pl.format("you buy {} on most shopping trips", _category())),
    Template("category_often", "category",
             (_col("category_affinity_score") >= 0.2) | (_col("category_line_share") >= 0.1),
             pl.format("you often buy {}", _category())),
    Template("category_before", "category", SINCE_CATEGORY.is_not_null(),
             pl.format("you have bought {} before", _category())),
    Template("cycle_due", "cycle", (CATEGORY_ORDERS >= 2) & (SINCE_CATEGORY >= 0.8 * CATEGORY_INTERVAL),
             pl.format("you usually buy {} {}; last time {}", _category(), _every(CATEGORY_INTERVAL),
                       _days_ago(SINCE_CATEGORY))),
    Template("cycle_last", "cycle", SINCE_CATEGORY.is_not_null(),
             pl.format("you last bought {} {}", _category(), _days_ago(SINCE_CATEGORY))),
    Template("product_due", "product",
             (_col("product_purchase_days") >= 3) & _col("product_due_ratio").is_between(0.8, 2.0),
             pl.format("you buy {} {}; last time {}", _col("product_name"), _every(PRODUCT_INTERVAL),
                       _days_ago(_col("days_since_product_purchase")))),
    Template("product_again", "product", _col("bought_product_before") == 1,
             pl.format("you have bought {} before", _col("product_name"))),
    Template("product_new", "product", _col("bought_product_before") == 0,
             pl.lit("something you have not tried yet")),
    Template("popular_choice", "popular", _col("product_share_in_category") >= POPULAR_SHARE,
             pl.format("a popular choice in {}", _category())),
    Template("brand_usual", "brand", pl.coalesce("brand_line_share", "brand_affinity") >= 0.5,
             pl.format("you usually choose {}", _col("brand"))),
    Template("brand_often", "brand", pl.coalesce("brand_line_share", "brand_affinity") >= 0.2,
             pl.format("you often buy {}", _col("brand"))),
    Template("discount_percent", "discount",
             (_col("discount_type") == "percentage") & (_col("discount_value") > 0),
             pl.format("{}% off", _number(_col("discount_value")))),
    Template("discount_amount", "discount",
             (_col("discount_type") == "fixed_amount") & (_col("discount_value") > 0),
             pl.format("{} off the price", _money(_col("discount_value")))),
    Template("discount_bogo", "discount", (_col("discount_type") == "bogo") & (_col("discount_value") > 0),
             pl.when(_col("discount_value") == 1).then(pl.lit("buy one, get one free"))
             .otherwise(pl.format("buy one, get {} free", _number(_col("discount_value"))))),
    Template("discount_depth", "discount", _col("discount_depth") > 0,
             pl.format("{}% off the shelf price", _int(_col("discount_depth") * 100))),
    Template("deeper_than_usual", "deeper", _col("discount_depth_vs_usual") >= 0.05,
             pl.lit("a deeper discount than you usually get")),
    Template("deal_for_you", "deal_match",
             (pl.coalesce("promo_affinity_all", "promo_affinity") >= 0.2) & (_col("discount_depth") >= 0.15),
             pl.lit("a good discount, and you like buying on promotion")),
    Template("promo_often", "promo", pl.coalesce("promo_affinity_all", "promo_affinity") >= 0.25,
             pl.lit("you often buy on promotion")),
    Template("offers_used", "offers_used", _col("redemption_rate") >= 0.08,
             pl.lit("you often use your personal offers")),
    Template("shopper_weekly", "shopper", _col("frequency") >= 12, pl.lit("you shop with us most weeks")),
    Template("shopper_recent", "shopper", _col("recency_days") <= 7, pl.lit("you shopped with us this week")),
    Template("segment", "segment", _segment_name().is_not_null(),
             pl.format("picked for {} shoppers like you", _segment_name())),
    Template("offer_popular", "offer_record", _col("historical_redemption_rate") >= 0.1,
             pl.lit("popular with other shoppers")),
    Template("offer_ending", "offer_record", _col("days_until_expiry") <= 3, pl.lit("ends soon")),
]

#: A row's one reason when no group gives one: why the candidate strategy proposed the offer.
FALLBACKS: list[Template] = [
    Template("strategy_category", "strategy", _col("strategy") == "category_affinity",
             pl.format("from {}, one of the categories you buy most", _category())),
    Template("strategy_repeat", "strategy", _col("strategy") == "repeat_purchase",
             pl.format("you have bought {} before", _col("product_name"))),
    Template("strategy_segment", "strategy",
             _col("strategy").is_in(["segment_popularity", "segment_default"]) & _segment_name().is_not_null(),
             pl.format("popular with {} shoppers", _segment_name())),
    Template("strategy_store", "strategy", _col("strategy") == "store_popularity",
             pl.lit("popular in your store")),
    Template("strategy_essentials", "strategy", _col("strategy") == "essentials", pl.lit("an everyday essential")),
    Template("strategy_any", "strategy", pl.lit(True), pl.lit("picked for you from this week's offers")),
]


def _chain(templates: list[Template]) -> pl.Expr:
    """``{phrase, template}`` of the first template whose condition holds and whose phrase is whole, else null.

    A phrase with a missing name in it (no category, say) is null: the next template may still hold.
    """
    expr = None
    for t in templates:  # a loop over the table's templates, building one vectorised expression
        cond = t.when.fill_null(False) & t.phrase.is_not_null()
        value = pl.struct(t.phrase.alias("phrase"), pl.lit(t.name).alias("template"))
        expr = pl.when(cond).then(value) if expr is None else expr.when(cond).then(value)
    return expr.otherwise(pl.lit(None, dtype=pl.Struct({"phrase": pl.Utf8, "template": pl.Utf8})))


def _with_fact_columns(facts: pl.DataFrame) -> pl.DataFrame:
    """``facts`` with every column a template reads (absent ones null), numbers as Float64."""
    return facts.with_columns(
        [pl.col(c).cast(t) if c in facts.columns else pl.lit(None, dtype=t).alias(c) for c, t in FACT_COLUMNS.items()]
    )


def group_contributions(contributions: models.Contributions) -> tuple[list[str], np.ndarray]:
    """The reason groups present and each row's summed contribution per group, (rows, groups)."""
    features = contributions.features
    groups = [g for g in GROUPS if any(GROUP_OF.get(f) == g for f in features)]
    summed = np.zeros((len(contributions.values), len(groups)))
    for j, g in enumerate(groups):  # a loop over the dozen groups: column sums, NaN counting as 0
        summed[:, j] = np.nansum(contributions.values[:, [GROUP_OF.get(f) == g for f in features]], axis=1)
    return groups, summed


def reasons_from(facts: pl.DataFrame, contributions: models.Contributions | None,
                 max_reasons: int = MAX_REASONS, min_log_odds: float = MIN_LOG_ODDS) -> pl.DataFrame:
    """Each row's reasons: its strongest positive reason groups' phrases, else its strategy's.

    Parameters
    ----------
    facts : polars.DataFrame
        One row per recommendation: feature values and catalogue names (any of
        :data:`FACT_COLUMNS`; absent ones count as unknown), in the row order
        of ``contributions``.
    contributions : Contributions or None
        The model's explanation of the same rows; None: the strategy's reason only.
    max_reasons, min_log_odds
        At most this many reasons, each from a group worth at least this much.

    Returns
    -------
    polars.DataFrame
        ``facts``' rows in order: ``reasons`` (list of str, strongest first,
        never empty) and ``templates`` (the template names used, same order).
    """
    n = facts.height
    facts = _with_fact_columns(facts).with_row_index("_row")
    if contributions is not None and contributions.values.shape[0] != n:
        raise ValueError(f"{contributions.values.shape[0]} rows of contributions for {n} rows of facts")
    groups, summed = group_contributions(contributions) if contributions is not None else ([], np.zeros((n, 0)))
    # candidates first (a group worth a reason), so phrases are built only for them, not for every row x group
    rows, columns = np.nonzero(summed >= min_log_odds)
    candidates = pl.DataFrame({"_row": rows.astype(np.uint32), "_group": columns.astype(np.int32),
                               "contribution": summed[rows, columns]})
    phrased = [pl.DataFrame(schema={"_row": pl.UInt32, "_group": pl.Int32, "contribution": pl.Float64,
                                    "phrase": pl.Utf8, "template": pl.Utf8})]
    for g, group in enumerate(groups):  # a loop over the dozen groups, each vectorised over its candidates
        templates = [t for t in TEMPLATES if t.group == group]
        mine = candidates.filter(pl.col("_group") == g)
        if not templates or not mine.height:
            continue
        reason = _chain(templates).alias("_reason")
        needed = facts.select(pl.col(sorted(set(reason.meta.root_names()))))  # gather only what it reads
        picked = needed[mine["_row"]].lazy().select(reason).collect()  # lazy: shared sub-expressions run once
        phrased.append(pl.concat([mine, picked], how="horizontal").unnest("_reason"))
    chosen = (
        pl.concat(phrased)
        .filter(pl.col("phrase").is_not_null())
        .sort(["_row", "contribution", "_group"], descending=[False, True, False])  # ties: the group table's order
        # two groups, one phrase: said once (hashed: ~4x faster than on the text; a collision drops a phrase)
        .filter(pl.struct("_row", pl.col("phrase").hash()).is_first_distinct())
        .group_by("_row", maintain_order=True)
        .head(max_reasons)
        .group_by("_row", maintain_order=True)
        .agg(reasons=pl.col("phrase"), templates=pl.col("template"))
    )
    unexplained = facts.join(chosen, on="_row", how="anti")
    fallback = unexplained.lazy().select("_row", _chain(FALLBACKS).alias("_reason")).collect().unnest("_reason")
    fallback = fallback.select("_row", reasons=pl.concat_list("phrase"), templates=pl.concat_list("template"))
    return pl.concat([chosen, fallback]).sort("_row").drop("_row")


def reason_facts(con: duckdb.DuckDBPyConnection, day: date, rows: pl.DataFrame) -> pl.DataFrame:
    """The feature values and catalogue names of ``rows`` (``customer_id``, ``offer_id``) on ``day``, in order.

    Reads the day's feature tables (the values the model scored) and the
    catalogue (``offers``, ``products``): what the ``recommendations`` asset reads.
    """
    keys = rows.select("customer_id", "offer_id").with_row_index("_row")
    con.register("reason_keys", keys.with_columns(day=pl.lit(day)).to_arrow())
    try:
        con.execute("create or replace temp table reason_requests as select * from reason_keys")
        values = stored_matrix(con, "reason_requests", day, ids=True)  # + product_id: Wide & Deep reads it
        names = con.sql(read_sql("metro_assets.ranking", "reason_facts").replace("{requests}", "reason_requests"),
                        params={"day": day}).pl()
    finally:
        con.unregister("reason_keys")
        con.execute("drop table if exists reason_requests")
    on = ["customer_id", "offer_id"]
    return (keys.join(values.drop("day"), on=on, how="left").join(names, on=on, how="left")
            .sort("_row").drop("_row"))


def reasons_for(con: duckdb.DuckDBPyConnection, day: date, model: models.StoredModel,
                top: pl.DataFrame) -> pl.Series:
    """The ``reasons`` column of ``top`` (the served rows of ``day``, scored by ``model``), aligned with its rows.

    Only these rows are explained: a day's top 10, never its pool.
    """
    if top.height == 0:
        return pl.Series("reasons", [], dtype=pl.List(pl.Utf8))
    facts = reason_facts(con, day, top)
    if "strategy" in top.columns:
        facts = facts.with_columns(strategy=top["strategy"])
    loaded = models.load(model)
    features = model.features or MODEL_FEATURES
    X = facts.select(pl.col(features).cast(pl.Float64)).to_numpy()
    return reasons_from(facts, loaded.explain(X))["reasons"]
