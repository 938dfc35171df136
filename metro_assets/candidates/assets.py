"""The candidate pool asset: a thin Dagster wrapper around :mod:`metro_assets.candidates.retrieval`."""

from dagster import AssetDep, AssetExecutionContext, AssetKey, MetadataValue, TimeWindowPartitionMapping, asset
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
        "repeat purchases, high margin and item2vec neighbours (cold start: store popularity, segment defaults, "
        "essentials), deduplicated and capped. Metadata: coverage, sizes, strategy shares, retrieval recall with "
        "each strategy left out (also in retrieval_summary).",
        deps=[AssetKey("customer_features"), AssetKey("offer_features"), AssetKey("customers"),
              AssetKey("offers"), AssetKey("products"), AssetKey("orders"), AssetKey("order_items"),
              AssetKey("redemptions"),  # the redemption caps (eligibility) and the pool's recall (metadata)
              # the embedding strategy: the newest vectors trained on or before D (weekly, with the ranker)
              AssetDep("product_embeddings", partition_mapping=TimeWindowPartitionMapping(
                  start_offset=-7, end_offset=0, allow_nonexistent_upstream_partitions=True))],
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
            summaries = {d: write_candidate_pool(con, d, limits, settings.embedding) for d in days(start, end)}
            outcomes, failing_days = evaluate_checks_by_day(con, checks, start, end)
        for d, summary in summaries.items():
            if "warning" in summary:
                context.log.warning(f"candidate_pool {d}: {summary['warning']}")
        last = summaries[max(summaries)]
        metadata = {key: value for key, value in last.items() if key not in ("strategy_shares", "strategy_recall")}
        metadata = {k: MetadataValue.text(v if v is not None else "n/a") if isinstance(v, str) or v is None else v
                    for k, v in metadata.items()}
        metadata["strategy_shares"] = MetadataValue.json(last["strategy_shares"])
        # pool recall with every strategy and with each one left out, at equal pool size (retrieval_summary)
        metadata["strategy_recall"] = MetadataValue.md(last["strategy_recall"] or
                                                       "n/a: the warehouse holds no day after this one")
        metadata["window"] = f"{start}..{end}"
        if len(summaries) > 1:
            metadata["per_day"] = MetadataValue.json({d.isoformat(): s for d, s in summaries.items()})
        yield from materializations(context, settings, {d: int(s["pairs"] or 0) for d, s in summaries.items()},
                                    metadata)
        yield from check_results(outcomes, failing_days, context, days(start, end))

    return [candidate_pool]
