"""The feature assets: thin Dagster wrappers around :mod:`metro_assets.features.daily`.

Partition D holds the state at the start of D (events dated before D only).
A run may cover several partitions: each day is written in its own
transaction, in order (no single-run backfill policy: a day of the pool is
millions of rows, so days are not stacked into one query).
"""

from datetime import date, timedelta

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs

from metro_assets.checking import evaluate_checks
from metro_assets.features.checks import CUSTOMER_CHECKS, INTERACTION_CHECKS, OFFER_CHECKS
from metro_assets.features.daily import write_features
from metro_assets.assets import user_errors
from metro_assets.partitions import partition_window
from metro_assets.partitions import daily_partitions
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema

OWNERS = ["team:data-platform"]
KINDS = {"duckdb", "sql"}


def days(start: date, end: date) -> list[date]:
    """The days of [start, end)."""
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _materialize(context: AssetExecutionContext, warehouse: DuckDBResource, table: str, checks):
    start, end = partition_window(context)
    with warehouse.get_connection() as con:
        ensure_schema(con)
        written = {d: write_features(con, table, d) for d in days(start, end)}
        outcomes = evaluate_checks(con, checks, start, end)
        total = con.sql(f"select count(*) from {table}").fetchall()[0][0]
    context.log.info(f"{table} {start}..{end}: {sum(written.values()):,} rows")
    yield MaterializeResult(
        metadata={
            "dagster/row_count": sum(written.values()),  # the UI's standard row count
            "rows_written": sum(written.values()),
            "rows_per_day": {d.isoformat(): n for d, n in written.items()},
            "rows_in_table": total,
            "window": f"{start}..{end}",
        }
    )
    yield from check_results(outcomes)


def build_feature_assets(settings: Settings) -> list:
    """``customer_features``, ``offer_features`` and ``interaction_features`` for these settings."""
    partitions = daily_partitions(settings)
    common = dict(partitions_def=partitions, group_name="features", kinds=KINDS, owners=OWNERS, pool="warehouse")

    @asset(
        name="customer_features",
        description="Per customer known before D: RFM over 90 days, promo affinity, basket size, category "
        "entropy and top categories, usual discount depth, days since joining (events before D only).",
        deps=[AssetKey("customers"), AssetKey("orders"), AssetKey("order_items"), AssetKey("products")],
        check_specs=check_specs(CUSTOMER_CHECKS),
        **common,
    )
    @user_errors
    def customer_features(context: AssetExecutionContext, warehouse: DuckDBResource):
        yield from _materialize(context, warehouse, "customer_features", CUSTOMER_CHECKS)

    @asset(
        name="offer_features",
        description="Per offer active on D and published before it: normalised discount depth, margin impact, "
        "days to expiry, smoothed historical redemption rate (impressions and redemptions before D).",
        deps=[AssetKey("offers"), AssetKey("products"), AssetKey("impressions"), AssetKey("redemptions")],
        check_specs=check_specs(OFFER_CHECKS),
        **common,
    )
    @user_errors
    def offer_features(context: AssetExecutionContext, warehouse: DuckDBResource):
        yield from _materialize(context, warehouse, "offer_features", OFFER_CHECKS)

    @asset(
        name="interaction_features",
        description="Per candidate pair of D: bought the product before, days since the last purchase in the "
        "category, category and brand affinity, discount depth vs the customer's usual, price sensitivity match.",
        deps=[AssetKey("candidate_pool"), AssetKey("orders"), AssetKey("order_items"), AssetKey("products"),
              AssetKey("offers")],
        check_specs=check_specs(INTERACTION_CHECKS),
        **common,
    )
    @user_errors
    def interaction_features(context: AssetExecutionContext, warehouse: DuckDBResource):
        yield from _materialize(context, warehouse, "interaction_features", INTERACTION_CHECKS)

    return [customer_features, offer_features, interaction_features]
