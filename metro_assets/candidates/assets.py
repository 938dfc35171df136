"""The candidate pool asset: a thin Dagster wrapper around :mod:`metro_assets.candidates.retrieval`."""

from dagster import AssetExecutionContext, AssetKey, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs, materializations, user_errors
from metro_assets.candidates.checks import candidate_checks
from metro_assets.candidates.retrieval import write_candidate_pool
from metro_assets.checking import evaluate_checks_by_day
from metro_assets.partitions import daily_partitions, days, partition_window
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema


def build_candidate_assets(settings: Settings) -> list:
    """``candidate_pool`` for these settings (the cap in its check comes from them)."""
    checks = candidate_checks(settings.candidates)
    partitions = daily_partitions(settings)

    @asset(
        name="candidate_pool",
        description="The offers worth ranking per customer on D: eligible offers only (active, published, "
        "store and segment in scope, cap not reached), retrieved by category affinity, segment popularity, "
        "repeat purchases and high margin (cold start: store popularity, segment defaults, essentials), "
        "deduplicated and capped. Metadata: coverage, sizes, strategy shares, retrieval recall.",
        deps=[AssetKey("customer_features"), AssetKey("offer_features"), AssetKey("customers"),
              AssetKey("offers"), AssetKey("products"), AssetKey("orders"), AssetKey("order_items"),
              AssetKey("redemptions")],  # the redemption caps (eligibility) and the pool's recall (metadata)
        partitions_def=partitions,
        group_name="candidates",
        kinds={"duckdb", "sql"},
        owners=["team:data-platform"],
        pool=settings.ops.pool,
        check_specs=check_specs(checks, partitions),
    )
    @user_errors
    def candidate_pool(context: AssetExecutionContext, warehouse: DuckDBResource):
        limits = settings.candidates
        start, end = partition_window(context)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            summaries = {d: write_candidate_pool(con, d, limits) for d in days(start, end)}
            outcomes, failing_days = evaluate_checks_by_day(con, checks, start, end)
        for d, summary in summaries.items():
            if "warning" in summary:
                context.log.warning(f"candidate_pool {d}: {summary['warning']}")
        last = summaries[max(summaries)]
        metadata = {key: value for key, value in last.items() if key != "strategy_shares"}
        metadata = {k: MetadataValue.text(v if v is not None else "n/a") if isinstance(v, str) or v is None else v
                    for k, v in metadata.items()}
        metadata["strategy_shares"] = MetadataValue.json(last["strategy_shares"])
        metadata["window"] = f"{start}..{end}"
        if len(summaries) > 1:
            metadata["per_day"] = MetadataValue.json({d.isoformat(): s for d, s in summaries.items()})
        yield from materializations(context, settings, {d: int(s["pairs"] or 0) for d, s in summaries.items()},
                                    metadata)
        yield from check_results(outcomes, failing_days, context, days(start, end))

    return [candidate_pool]
