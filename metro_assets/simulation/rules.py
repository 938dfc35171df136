"""The rules the raw tables obey: one source for the blocking checks and the import validation.

Each rule is a SQL query that selects the rows breaking it within a window
(``$start`` <= day < ``$end``), its first column an id to show. The raw
assets run them as blocking asset checks after writing
(:mod:`metro_assets.simulation.checks`); an import runs the very same SQL over
its staged tables before anything is written
(:mod:`metro_assets.importing.loading`), so a refused import writes nothing
and an accepted one cannot fail these checks afterwards. No Dagster here.

Examples
--------
>>> import duckdb
>>> from datetime import date
>>> con = duckdb.connect()
>>> _ = con.execute("create table products as select 7 as product_id, -50.0 as base_price, date '2025-08-15' as day")
>>> [(v.rule.name, v.count, v.examples) for v in violations(con, [RULES["products_have_positive_prices"]],
...                                                         date(2025, 8, 15), date(2025, 8, 16))]
[('products_have_positive_prices', 1, [7])]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Iterable

from metro_assets.checking import Check, evaluate_checks

IN_WINDOW = "day >= $start and day < $end"

KEYS = {
    "customers": "customer_id",
    "products": "product_id",
    "offers": "offer_id",
    "orders": "order_id",
    "order_items": "order_item_id",
    "impressions": "impression_id",
    "redemptions": "redemption_id",
}


@dataclass(frozen=True)
class Rule:
    """A named rule on one raw table: ``sql`` selects the breaking rows (first column: an id).

    ``column`` is the column an import report names; ``shows`` names the id the SQL selects.
    ``imported`` is False for rules over tables an import does not provide (the simulator's
    ``experiment_assignments``, written empty for an import, so they hold there trivially).
    """

    name: str
    table: str
    description: str
    sql: str
    column: str
    shows: str
    imported: bool = True

    @property
    def check(self) -> Check:
        """The rule as the raw assets' data-quality check."""
        return Check(self.name, self.table, self.description, self.sql)


@dataclass(frozen=True)
class Violation:
    rule: Rule
    count: int
    examples: list = field(default_factory=list)


def violations(con, rules: Iterable[Rule], start: date, end: date) -> list[Violation]:
    """The rules broken by rows of [start, end): how many rows, and the first ids (in id order)."""
    rules = list(rules)
    outcomes = evaluate_checks(con, [rule.check for rule in rules], start, end)
    return [Violation(rule, o.failing, o.examples) for rule, o in zip(rules, outcomes) if not o.passed]


def _unique(table: str) -> Rule:
    key = KEYS[table]
    return Rule(
        f"{table}_have_unique_ids", table, f"{key} is unique across the whole {table} table",
        f"select {key} from {table} where {key} in "
        f"(select {key} from {table} where {IN_WINDOW}) group by {key} having count(*) > 1",
        key, key,
    )


def _refers(name: str, table: str, column: str, parent: str, parent_key: str) -> Rule:
    return Rule(
        name, table, f"every {table}.{column} is a {parent}.{parent_key}",
        f"select t.{column} from {table} t anti join {parent} p on t.{column} = p.{parent_key} "
        f"where t.{IN_WINDOW}",
        column, column,
    )


RAW_RULES: list[Rule] = [
    *(_unique(table) for table in KEYS),
    _refers("orders_have_customers", "orders", "customer_id", "customers", "customer_id"),
    _refers("order_items_have_orders", "order_items", "order_id", "orders", "order_id"),
    _refers("order_items_have_products", "order_items", "product_id", "products", "product_id"),
    _refers("offers_have_products", "offers", "product_id", "products", "product_id"),
    _refers("impressions_have_customers", "impressions", "customer_id", "customers", "customer_id"),
    _refers("impressions_have_offers", "impressions", "offer_id", "offers", "offer_id"),
    _refers("redemptions_have_orders", "redemptions", "order_id", "orders", "order_id"),
    Rule(
        "redemptions_follow_impressions",
        "redemptions",
        "each redemption follows an impression of the same customer and offer within 7 days",
        f"""select r.redemption_id from redemptions r
            where r.{IN_WINDOW} and not exists (
                select 1 from impressions i
                where i.customer_id = r.customer_id and i.offer_id = r.offer_id
                  and i.shown_timestamp <= r.redeemed_timestamp
                  and r.redeemed_timestamp < i.shown_timestamp + interval 7 day)""",
        "redeemed_timestamp", "redemption_id",
    ),
    Rule(
        "offers_stay_within_max_redemptions",
        "redemptions",
        "no offer is redeemed more often than its max_redemptions",
        f"""select o.offer_id from offers o join redemptions r using (offer_id)
            where o.max_redemptions is not null
              and o.offer_id in (select offer_id from redemptions where {IN_WINDOW})
            group by o.offer_id, o.max_redemptions having count(*) > o.max_redemptions""",
        "offer_id", "offer_id",
    ),
    Rule(
        "assignments_have_customers",
        "experiment_assignments",
        "every experiment_assignments.customer_id is a customers.customer_id",
        f"select t.customer_id from experiment_assignments t anti join customers p on t.customer_id = p.customer_id "
        f"where t.{IN_WINDOW}",
        "customer_id", "customer_id", imported=False,
    ),
    Rule(
        "holdout_sees_no_offers",
        "impressions",
        "no impression goes to a customer in the holdout arm on that day",
        """select i.impression_id from impressions i join experiment_assignments a
            on a.customer_id = i.customer_id and i.day between a.from_date and a.to_date
            where i.day >= $start and i.day < $end and a.arm = 'holdout'""",
        "customer_id", "impression_id", imported=False,
    ),
    Rule(
        "order_items_have_positive_amounts",
        "order_items",
        "quantity and unit_price are positive; a discount is between 0 and the line's value",
        f"""select order_item_id from order_items where {IN_WINDOW} and
            (quantity <= 0 or unit_price <= 0 or discount_amount < 0
             or discount_amount > quantity * unit_price + 0.005)""",
        "quantity, unit_price or discount_amount", "order_item_id",
    ),
    Rule(
        "orders_have_positive_totals",
        "orders",
        "total_amount is positive and num_items at least 1",
        f"select order_id from orders where {IN_WINDOW} and (total_amount <= 0 or num_items < 1)",
        "total_amount or num_items", "order_id",
    ),
    Rule(
        "products_have_positive_prices",
        "products",
        "base_price is positive",
        f"select product_id from products where {IN_WINDOW} and not base_price > 0",
        "base_price", "product_id",
    ),
    Rule(
        "offers_have_valid_discounts",
        "offers",
        "discount_value, when given, is positive (a percentage at most 100)",
        f"""select offer_id from offers where {IN_WINDOW} and discount_value is not null and
            (not discount_value > 0 or (discount_type = 'percentage' and discount_value > 100))""",
        "discount_value", "offer_id",
    ),
]

RULES = {rule.name: rule for rule in RAW_RULES}
