"""Checks on the feature tables: one row per key, values in their ranges.

Each check selects the rows of the materialized window that break its rule.
"""

from __future__ import annotations

from metro_assets.checking import Check

IN_WINDOW = "day >= $start and day < $end"


def _unique(table: str, keys: str, name: str) -> Check:
    return Check(
        name,
        table,
        f"one row per ({keys}) in {table}",
        f"select concat_ws(':', {keys}) from {table} where {IN_WINDOW} group by {keys} having count(*) > 1",
    )


def _not_nan(columns: list[str]) -> str:
    return " or ".join(f"coalesce(isnan({c}), false)" for c in columns)


def _outside(column: str, low: float, high: float) -> str:
    return f"({column} < {low} or {column} > {high})"


CUSTOMER_CHECKS = [
    _unique("customer_features", "customer_id, day", "customer_features_have_one_row_per_customer"),
    Check(
        "customer_features_cover_known_customers",
        "customer_features",
        "every customer known before D (customers.day < D) has a row on D, and no other customer",
        f"""select coalesce(f.customer_id, k.customer_id) from
              (select customer_id, day from customer_features where {IN_WINDOW}) f
            full join (select c.customer_id, d.day from customers c
                       join (select distinct day from customer_features where {IN_WINDOW}) d on c.day < d.day) k
              on k.customer_id = f.customer_id and k.day = f.day
            where f.customer_id is null or k.customer_id is null""",
    ),
    Check(
        "customer_features_are_in_range",
        "customer_features",
        "rates in [0, 1], counts and amounts not negative, recency at least a day, no NaN",
        f"""select customer_id from customer_features where {IN_WINDOW} and (
              {_outside('promo_affinity', 0, 1)} or {_outside('avg_discount_depth_used', 0, 1)}
              or frequency < 0 or monetary < 0 or recency_days < 1 or category_entropy < 0
              or avg_basket_size < 1
              or (frequency > 0) <> (avg_basket_size is not null)
              or {_not_nan(['recency_days', 'monetary', 'promo_affinity', 'avg_basket_size',
                            'category_entropy', 'avg_discount_depth_used'])})""",
    ),
]

OFFER_CHECKS = [
    _unique("offer_features", "offer_id, day", "offer_features_have_one_row_per_offer"),
    Check(
        "offer_features_are_in_range",
        "offer_features",
        "depth and smoothed rate in [0, 1], counts not negative, the offer not expired, no NaN",
        f"""select offer_id from offer_features where {IN_WINDOW} and (
              {_outside('discount_depth', 0, 1)} or {_outside('historical_redemption_rate', 0, 1)}
              or historical_redemption_rate is null
              or impressions_before < 0 or redemptions_before < 0 or days_until_expiry < 0
              or margin_impact < 0
              or {_not_nan(['discount_depth', 'margin_impact', 'historical_redemption_rate'])})""",
    ),
]

INTERACTION_CHECKS = [
    _unique("interaction_features", "customer_id, offer_id, day", "interaction_features_have_one_row_per_pair"),
    Check(
        "interaction_features_cover_the_pool",
        "interaction_features",
        "every candidate pair of D has interaction features on D, and no other pair",
        f"""select concat_ws(':', coalesce(f.customer_id, p.customer_id), coalesce(f.offer_id, p.offer_id)) from
              (select customer_id, offer_id, day from interaction_features where {IN_WINDOW}) f
            full join (select customer_id, offer_id, day from candidate_pool where {IN_WINDOW}) p
              on p.customer_id = f.customer_id and p.offer_id = f.offer_id and p.day = f.day
            where f.customer_id is null or p.customer_id is null""",
    ),
    Check(
        "interaction_features_are_in_range",
        "interaction_features",
        "affinities and price match in [0, 1], depth gap in [-1, 1], recency at least a day, no NaN",
        f"""select concat_ws(':', customer_id, offer_id) from interaction_features where {IN_WINDOW} and (
              {_outside('category_affinity_score', 0, 1)} or {_outside('brand_affinity', 0, 1)}
              or {_outside('price_sensitivity_match', 0, 1)} or {_outside('discount_depth_vs_usual', -1, 1)}
              or days_since_last_purchase_in_category < 1 or bought_product_before is null
              or {_not_nan(['days_since_last_purchase_in_category', 'category_affinity_score',
                            'discount_depth_vs_usual', 'price_sensitivity_match', 'brand_affinity'])})""",
    ),
]
