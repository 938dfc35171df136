"""The feature assets: thin Dagster wrappers around :mod:`metro_assets.features.daily`.

Partition D holds the state at the start of D (events dated before D only).
A run may cover several partitions: each day is written in its own
transaction, in order (no single-run backfill policy: a day of the pool is
millions of rows, so days are not stacked into one query).
"""

from dagster import AssetDep, AssetExecutionContext, AssetKey, TimeWindowPartitionMapping, asset
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs, materializations, user_errors
from metro_assets.checking import evaluate_checks_by_day
from metro_assets.features.checks import CUSTOMER_CHECKS, INTERACTION_CHECKS, OFFER_CHECKS
from metro_assets.features.daily import write_features
from metro_assets.partitions import daily_partitions, days, partition_window
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema

OWNERS = ["team:data-platform"]
KINDS = {"duckdb", "sql"}


def _materialize(context: AssetExecutionContext, warehouse: DuckDBResource, settings: Settings, table: str,
                 checks):
    start, end = partition_window(context)
    with warehouse.get_connection() as con:
        ensure_schema(con)
        written = {d: write_features(con, table, d, settings.embedding) for d in days(start, end)}
        outcomes, failing_days = evaluate_checks_by_day(con, checks, start, end)
        total = con.sql(f"select count(*) from {table}").fetchall()[0][0]
    context.log.info(f"{table} {start}..{end}: {sum(written.values()):,} rows")
    yield from materializations(context, settings, written, {"rows_in_table": total, "window": f"{start}..{end}"})
    yield from check_results(outcomes, failing_days, context, days(start, end))


#: Each feature table: what it holds, the tables its SQL reads, its checks.
FEATURE_TABLES = {
    "customer_features": (
        "Per customer known before D: RFM over 90 days, promo affinity, basket size, category entropy and top "
        "categories, usual discount depth, days since joining (events before D only).",
        ["customers", "orders", "order_items", "products", "impressions", "redemptions"],
        CUSTOMER_CHECKS,
    ),
    "offer_features": (
        "Per offer active on D and published before it: normalised discount depth, margin impact, days to "
        "expiry, smoothed historical redemption rate (impressions and redemptions before D), the product's "
        "share of its category's and brand's order lines in the 90 days before D.",
        ["offers", "products", "order_items", "impressions", "redemptions"],
        OFFER_CHECKS,
    ),
    "interaction_features": (
        "Per candidate pair of D: bought the product before, days since the last purchase in the category, "
        "category and brand affinity, discount depth vs the customer's usual, price sensitivity match, "
        "embedding affinity (item2vec: customer vector . product vector), the customer's purchase days of the "
        "product and how due it is, impressions of the offer and its category in the 28 days before D.",
        ["candidate_pool", "orders", "order_items", "products", "offers", "impressions", "redemptions",
         "product_embeddings"],
        INTERACTION_CHECKS,
    ),
}


def _dep(table: str):
    """An upstream table; weekly ``product_embeddings``: the newest version of the week before the day."""
    if table == "product_embeddings":
        return AssetDep(table, partition_mapping=TimeWindowPartitionMapping(
            start_offset=-7, end_offset=0, allow_nonexistent_upstream_partitions=True))
    return AssetKey(table)


def _feature_asset(settings: Settings, table: str):
    description, reads, checks = FEATURE_TABLES[table]
    partitions = daily_partitions(settings)

    @asset(name=table, description=description, deps=[_dep(t) for t in reads],
           check_specs=check_specs(checks, partitions), partitions_def=partitions, group_name="features",
           kinds=KINDS, owners=OWNERS, pool=settings.ops.pool)
    @user_errors
    def feature_table(context: AssetExecutionContext, warehouse: DuckDBResource):
        yield from _materialize(context, warehouse, settings, table, checks)

    return feature_table


def build_feature_assets(settings: Settings) -> list:
    """``customer_features``, ``offer_features`` and ``interaction_features`` for these settings."""
    return [_feature_asset(settings, table) for table in FEATURE_TABLES]
