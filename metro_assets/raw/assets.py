"""The raw assets: the simulated retailer's tables, one partition per day."""


from dagster import (
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    multi_asset,
)
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs, materializations, user_errors
from metro_assets.checking import CheckOutcome, evaluate_checks_by_day
from metro_assets.errors import DataError
from metro_assets.raw.source import add_rows_per_day, raw_stream
from metro_assets.partitions import daily_partitions, days as days_of, partition_window
from metro_assets.settings import Settings, check_writable
from metro_assets.simulation.checks import RAW_CHECKS, SEGMENT_SHARES_CHECK
from metro_assets.simulation.world import RAW_TABLES, TRUTH_TABLES
from metro_assets.warehouse import ensure_schema, replace_partitions_in_pieces

RAW_DESCRIPTIONS = {
    "customers": "Customers, each in the partition of the day they joined (earlier members: the first day).",
    "products": "The catalogue: 20 categories, brands incl. the Metro Chef private label, prices and margins.",
    "offers": "Promotional offers, each in the partition of the day it was published (a week before it starts).",
    "orders": "Shopping trips, including the orders that redemptions create.",
    "order_items": "Order lines, with is_promo and discount_amount.",
    "impressions": "Offers shown by the legacy policy, with position, propensity and the exploration flag.",
    "redemptions": "Offers redeemed within 7 days of an impression, inside a shopping trip (its order).",
    "experiment_assignments": "The randomised holdout: each customer's arm (holdout sees no offers) per 4-week block.",
}


def build_raw_assets(settings: Settings):
    """The raw multi-asset for these settings (partitions follow the start date and scale, or the import).

    ``METRO_SOURCE`` picks the simulator or an import (:mod:`metro_assets.importing`);
    an import is validated whole before anything is written, and the segment
    shares check, a property of the simulator, is reported as skipped for it.
    """
    checks = [*RAW_CHECKS, SEGMENT_SHARES_CHECK]
    partitions = daily_partitions(settings)

    @multi_asset(
        name="raw_tables",
        specs=[
            AssetSpec(table, description=RAW_DESCRIPTIONS[table], group_name="raw", kinds={"duckdb", "polars"},
                      owners=["team:data-platform"])
            for table in RAW_TABLES
        ],
        check_specs=check_specs(checks),  # one result per run: a backfill of 180 days is one window
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        pool=settings.ops.pool,
    )
    @user_errors
    def raw_tables(context: AssetExecutionContext, warehouse: DuckDBResource):
        current = settings  # validated once, when the code location loaded
        start, end = partition_window(context)
        check_writable(current.warehouse, "METRO_WAREHOUSE")
        try:
            known = context.assets_def.partitions_def  # the days the code location was loaded with
            days = (known.start.date(), known.end.date() if known.end else current.partitions_end)
            batch = raw_stream(current, start, end, days)
        except DataError as exc:  # the summary becomes the failure; the full report goes to the log
            context.log.error(f"import report:\n{exc.report}" if hasattr(exc, "report") else str(exc))
            raise
        for line in batch.log:
            context.log.warning(line)
        active = [c for c in checks if not (batch.imported and c is SEGMENT_SHARES_CHECK)]
        with warehouse.get_connection() as con:
            ensure_schema(con)
            counts: dict = {}

            def counted():  # rows per table and day, counted as the pieces pass (a simulation: a week each)
                for piece in batch.pieces():
                    add_rows_per_day(counts, piece)
                    yield piece

            tables = (*RAW_TABLES, *TRUTH_TABLES) if not batch.tables else tuple(batch.tables)
            written = replace_partitions_in_pieces(con, counted(), tables, start, end)
            outcomes, failing_days = evaluate_checks_by_day(con, active, start, end)
            totals = {t: con.sql(f"select count(*) from {t}").fetchall()[0][0] for t in RAW_TABLES}
        if batch.imported:
            skipped = "skipped: imported data has no segment targets"
            outcomes.append(CheckOutcome(SEGMENT_SHARES_CHECK, 0, skipped=skipped))
        verb = "imported" if batch.imported else "simulated"
        context.log.info(f"{verb} {start}..{end}: " + ", ".join(f"{t} {written[t]:,}" for t in RAW_TABLES))
        for table in RAW_TABLES:
            yield from materializations(
                context, settings, {d: counts.get(table, {}).get(d, 0) for d in days_of(start, end)},
                {"rows_in_table": totals[table], "window": f"{start}..{end}", "source": batch.source,
                 **batch.metadata.get(table, {})},
                asset_key=table,
            )
        yield from check_results(outcomes, failing_days)

    return raw_tables
