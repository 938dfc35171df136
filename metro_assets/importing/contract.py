"""The import contract: the files, columns and types a retailer's export provides.

One definition drives the reader, the validator, the normaliser and the
exporter, so they cannot disagree; ``docs/IMPORT.md`` documents it for people.

Examples
--------
>>> [c.name for c in CONTRACT["orders"].required]
['order_id', 'customer_id', 'store_id', 'order_timestamp']
>>> CONTRACT["offers"].key
'offer_id'
"""

from __future__ import annotations

from dataclasses import dataclass

# kind -> warehouse type, and how people read it in error reports
KINDS = {
    "id": ("BIGINT", "a whole number"),
    "int": ("INTEGER", "a whole number"),
    "float": ("DOUBLE", "a number"),
    "bool": ("BOOLEAN", "true/false"),
    "date": ("DATE", "a date like 2025-08-15"),
    "timestamp": ("TIMESTAMP", "a timestamp like 2025-08-15 14:30:00"),
    "text": ("VARCHAR", "text"),
}

SEGMENTS = ("budget", "premium", "family", "horeca")
UNKNOWN_SEGMENT = "unknown"
DISCOUNT_TYPES = ("percentage", "fixed_amount", "bogo")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = False

    @property
    def sql_type(self) -> str:
        return KINDS[self.kind][0]


@dataclass(frozen=True)
class Reference:
    """``table.column`` must be a ``parent.parent_column``."""

    table: str
    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[Column, ...]
    key: str  # unique when given; generated when an optional key is missing

    @property
    def required(self) -> list[Column]:
        return [c for c in self.columns if c.required]

    @property
    def optional(self) -> list[Column]:
        return [c for c in self.columns if not c.required]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _t(name: str, key: str, *columns: tuple) -> TableContract:
    return TableContract(name, tuple(Column(*c) for c in columns), key)


R = True  # required
CONTRACT: dict[str, TableContract] = {
    t.name: t
    for t in (
        _t("customers", "customer_id",
           ("customer_id", "id", R), ("home_store_id", "int", R), ("segment", "text"), ("join_date", "date"),
           ("loyalty_tier", "text"), ("email_consent", "bool")),
        _t("products", "product_id",
           ("product_id", "id", R), ("category", "text", R), ("subcategory", "text"), ("brand", "text"),
           ("name", "text"), ("base_price", "float"), ("margin", "float"), ("shelf_life_days", "int")),
        _t("offers", "offer_id",
           ("offer_id", "id", R), ("product_id", "id", R), ("start_date", "date", R), ("end_date", "date", R),
           ("discount_type", "text"), ("discount_value", "float"), ("store_scope", "text"),
           ("segment_scope", "text"), ("max_redemptions", "int")),
        _t("orders", "order_id",
           ("order_id", "id", R), ("customer_id", "id", R), ("store_id", "int", R),
           ("order_timestamp", "timestamp", R), ("total_amount", "float"), ("num_items", "int")),
        _t("order_items", "order_item_id",
           ("order_id", "id", R), ("product_id", "id", R), ("quantity", "int", R), ("unit_price", "float", R),
           ("order_item_id", "id"), ("is_promo", "bool"), ("discount_amount", "float")),
        _t("impressions", "impression_id",
           ("customer_id", "id", R), ("offer_id", "id", R), ("shown_timestamp", "timestamp", R),
           ("impression_id", "id"), ("channel", "text"), ("position", "int"), ("propensity", "float"),
           ("is_exploration", "bool")),
        _t("redemptions", "redemption_id",
           ("customer_id", "id", R), ("offer_id", "id", R), ("redeemed_timestamp", "timestamp", R),
           ("redemption_id", "id"), ("order_id", "id")),
    )
}

TABLES = tuple(CONTRACT)

# In dependency order: a parent's orphans are dropped before its children are checked.
REFERENCES = (
    Reference("offers", "product_id", "products", "product_id"),
    Reference("orders", "customer_id", "customers", "customer_id"),
    Reference("order_items", "order_id", "orders", "order_id"),
    Reference("order_items", "product_id", "products", "product_id"),
    Reference("impressions", "customer_id", "customers", "customer_id"),
    Reference("impressions", "offer_id", "offers", "offer_id"),
    Reference("redemptions", "customer_id", "customers", "customer_id"),
    Reference("redemptions", "offer_id", "offers", "offer_id"),
    Reference("redemptions", "order_id", "orders", "order_id"),
)

# The event timestamps that place the history: its first and last day follow them.
EVENT_TIMESTAMPS = {"orders": "order_timestamp", "impressions": "shown_timestamp", "redemptions": "redeemed_timestamp"}
