"""Data-quality checks on the raw tables (run with every raw materialization).

Each check selects the rows of the materialized window that break its rule.
"""

from __future__ import annotations

from metro_assets.checking import Check

IN_WINDOW = "day >= $start and day < $end"

_KEYS = {
    "customers": "customer_id",
    "products": "product_id",
    "offers": "offer_id",
    "orders": "order_id",
    "order_items": "order_item_id",
    "impressions": "impression_id",
    "redemptions": "redemption_id",
}


def _unique(table: str, key: str) -> Check:
    return Check(
        f"{table}_have_unique_ids",
        table,
        f"{key} is unique across the whole {table} table",
        f"select {key} from {table} where {key} in "
        f"(select {key} from {table} where {IN_WINDOW}) group by {key} having count(*) > 1",
    )


def _refers(name: str, table: str, column: str, parent: str, parent_key: str) -> Check:
    return Check(
        name,
        table,
        f"every {table}.{column} is a {parent}.{parent_key}",
        f"select t.{column} from {table} t anti join {parent} p on t.{column} = p.{parent_key} "
        f"where t.{IN_WINDOW}",
    )


RAW_CHECKS = [
    *(_unique(table, key) for table, key in _KEYS.items()),
    _refers("orders_have_customers", "orders", "customer_id", "customers", "customer_id"),
    _refers("order_items_have_orders", "order_items", "order_id", "orders", "order_id"),
    _refers("order_items_have_products", "order_items", "product_id", "products", "product_id"),
    _refers("offers_have_products", "offers", "product_id", "products", "product_id"),
    _refers("impressions_have_customers", "impressions", "customer_id", "customers", "customer_id"),
    _refers("impressions_have_offers", "impressions", "offer_id", "offers", "offer_id"),
    _refers("redemptions_have_orders", "redemptions", "order_id", "orders", "order_id"),
    Check(
        "redemptions_follow_impressions",
        "redemptions",
        "each redemption follows an impression of the same customer and offer within 7 days",
        f"""select r.redemption_id from redemptions r
            where r.{IN_WINDOW} and not exists (
                select 1 from impressions i
                where i.customer_id = r.customer_id and i.offer_id = r.offer_id
                  and i.shown_timestamp <= r.redeemed_timestamp
                  and r.redeemed_timestamp < i.shown_timestamp + interval 7 day)""",
    ),
    Check(
        "offers_stay_within_max_redemptions",
        "redemptions",
        "no offer is redeemed more often than its max_redemptions",
        f"""select o.offer_id from offers o join redemptions r using (offer_id)
            where o.max_redemptions is not null
              and o.offer_id in (select offer_id from redemptions where {IN_WINDOW})
            group by o.offer_id, o.max_redemptions having count(*) > o.max_redemptions""",
    ),
    _refers("assignments_have_customers", "experiment_assignments", "customer_id", "customers", "customer_id"),
    Check(
        "holdout_sees_no_offers",
        "impressions",
        "no impression goes to a customer in the holdout arm on that day",
        f"""select i.impression_id from impressions i join experiment_assignments a
            on a.customer_id = i.customer_id and i.day between a.from_date and a.to_date
            where i.day >= $start and i.day < $end and a.arm = 'holdout'""",
    ),
    Check(
        "order_items_have_positive_amounts",
        "order_items",
        "quantity and unit_price are positive; a discount is between 0 and the line's value",
        f"""select order_item_id from order_items where {IN_WINDOW} and
            (quantity <= 0 or unit_price <= 0 or discount_amount < 0
             or discount_amount > quantity * unit_price + 0.005)""",
    ),
    Check(
        "orders_have_positive_totals",
        "orders",
        "total_amount is positive and num_items at least 1",
        f"select order_id from orders where {IN_WINDOW} and (total_amount <= 0 or num_items < 1)",
    ),
]

SEGMENT_TARGETS = {"budget": 0.40, "premium": 0.20, "family": 0.30, "horeca": 0.10}

SEGMENT_SHARES_CHECK = Check(
    "customer_segments_match_targets",
    "customers",
    "each segment's share of all customers is within 2 points of its target, or 3 standard errors "
    "for small populations (simulated data)",
    "select segment from (select segment, count(*) / sum(count(*)) over () as share, sum(count(*)) over () as n "
    "from customers group by segment) join (values "
    + ", ".join(f"('{s}', {p})" for s, p in SEGMENT_TARGETS.items())
    + ") as t(segment, target) using (segment) "
    "where abs(share - target) > greatest(0.02, 3 * sqrt(target * (1 - target) / n))",
)
