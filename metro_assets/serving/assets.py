"""The ``serving_snapshot`` asset: a thin Dagster wrapper around :mod:`metro_assets.serving.publish`."""

from dagster import AssetExecutionContext, AssetKey, MetadataValue, TableColumn, TableSchema, asset
from dagster_duckdb import DuckDBResource

from metro_assets.assets import materializations, user_errors
from metro_assets.partitions import daily_partitions, partition_window
from metro_assets.serving.publish import SNAPSHOT_INPUTS, publish_snapshot
from metro_assets.serving.snapshot import SNAPSHOT_COLUMNS
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema


#: What each column of the file holds (the file's contract is :data:`SNAPSHOT_COLUMNS`).
COLUMN_NOTES = {
    "run_date": "the day the offers are for",
    "customer_id": "the customer",
    "rank": "1 = best",
    "offer_id": "the offer",
    "product_id": "the offer's product",
    "product_name": "the product's name",
    "discount_type": "percentage | fixed_amount | bogo (null if unknown)",
    "discount_value": "the discount, in the unit of its type (null if unknown)",
    "score": "predicted P(redemption within 7 days)",
    "expiry_date": "the offer's last day",
    "strategy": "the candidate strategy that retrieved the offer",
    "model_version": "the model that scored the run date",
    "reasons": "why this offer: 1-3 plain phrases, strongest first (empty in a file from before reasons)",
}
COLUMN_SCHEMA = TableSchema(columns=[TableColumn(name, str(dtype), description=COLUMN_NOTES[name])
                                     for name, dtype in SNAPSHOT_COLUMNS.items()])


def build_serving_assets(settings: Settings) -> list:
    """``serving_snapshot`` for these settings."""

    @asset(
        name="serving_snapshot",
        description="The Parquet file the API serves (METRO_SERVING): the newest METRO_SERVING_DAYS run dates of "
                    "recommendations with their offer and product fields, replaced atomically. Each "
                    "materialization publishes the whole file, so a failed publish is made good by the next run.",
        group_name="serving",
        kinds={"parquet", "duckdb"},
        owners=["team:data-science"],
        partitions_def=daily_partitions(settings),
        deps=[AssetKey(t) for t in SNAPSHOT_INPUTS],
        metadata={"dagster/column_schema": COLUMN_SCHEMA},  # a file, not a table: the file's columns
        pool=settings.ops.pool,
    )
    @user_errors
    def serving_snapshot(context: AssetExecutionContext, warehouse: DuckDBResource):
        current = settings  # validated once, when the code location loaded
        start, end = partition_window(context)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            published = publish_snapshot(con, current.serving, current.ranker.serving_days)
        context.log.info(f"serving snapshot {published.path}: {published.rows:,} rows, run dates "
                         f"{', '.join(map(str, published.run_dates)) or 'none'}")
        newest = published.newest
        # one file for the whole run: its rows are the row count of each partition the run covers
        yield from materializations(
            context, settings, {start: published.rows},
            {
                "file": published.path.name,
                "path": MetadataValue.path(str(published.path)),
                "bytes": published.bytes,
                "run_date": newest.isoformat() if newest else "none",
                "model_version": published.model_versions[newest] if newest else "none",
                "run_dates": MetadataValue.json([d.isoformat() for d in published.run_dates]),
                "model_versions": MetadataValue.json({d.isoformat(): v for d, v in published.model_versions.items()}),
                "window": f"{start}..{end}",
            },
        )

    return [serving_snapshot]
