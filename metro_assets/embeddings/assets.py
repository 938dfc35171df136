"""The ``product_embeddings`` asset: a thin Dagster wrapper around :mod:`metro_assets.embeddings.item2vec`.

Weekly, like the ranker: materialized on retrain days (the ``retrain`` job),
partition = the training day, trained on purchases before it. The daily
candidate pool and interaction features use the newest version on or before
their day.
"""

from datetime import timedelta

from dagster import AssetExecutionContext, AssetKey, MetadataValue, RetryPolicy, asset
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs, materializations, user_errors
from metro_assets.checking import evaluate_checks
from metro_assets.embeddings.checks import EMBEDDING_CHECKS
from metro_assets.embeddings.item2vec import train_item2vec
from metro_assets.partitions import daily_partitions, days, partition_window
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema, replace_partitions


OFF = ("not trained: nothing uses the vectors (METRO_CANDIDATES_EMBEDDING=0 and METRO_EMBEDDING_FEATURE=false); "
       "set either to train them")


def build_embedding_assets(settings: Settings) -> list:
    """``product_embeddings`` for these settings (``METRO_EMBEDDING_*``)."""
    partitions = daily_partitions(settings)

    @asset(
        name="product_embeddings",
        description="item2vec product vectors (gensim skip-gram over baskets and customer purchase sequences, "
                    "fixed seed, one worker) trained on the order lines of the METRO_EMBEDDING_DAYS before the "
                    "day. Materialized with the ranker on retrain days; the embedding candidate strategy and the "
                    "embedding_affinity feature use the newest version on or before their day.",
        group_name="model",
        kinds={"gensim", "duckdb"},
        owners=["team:data-science"],
        partitions_def=partitions,
        deps=[AssetKey("orders"), AssetKey("order_items"), AssetKey("products")],
        check_specs=check_specs(EMBEDDING_CHECKS, partitions),
        pool=settings.ops.pool,
        retry_policy=RetryPolicy(max_retries=1, delay=settings.ops.retry_delay),
    )
    @user_errors
    def product_embeddings(context: AssetExecutionContext, warehouse: DuckDBResource):
        start, end = partition_window(context)
        written, metadata = {}, {}
        # nothing reads the vectors while the strategy and the feature are both off (their default: no
        # measured gain, docs/RETRIEVAL.md), so the weekly retrain does not pay item2vec's minute for nothing
        used = settings.candidates.embedding > 0 or settings.embedding.feature
        with warehouse.get_connection() as con:
            ensure_schema(con)
            for day in days(start, end):  # a backfill trains each day's version on its own
                pv = train_item2vec(con, day, settings.embedding) if used else None
                frame = pv.frame() if pv is not None else _empty()
                written[day] = replace_partitions(con, {"product_embeddings": frame}, day,
                                                  day + timedelta(days=1))["product_embeddings"]
                if not used:
                    context.log.info(f"product_embeddings {day}: {OFF}")
                    metadata = {"off": MetadataValue.text(OFF)}
                elif pv is None:
                    context.log.warning(f"product_embeddings {day}: no order lines before the day, no vectors")
                    metadata = {"warning": MetadataValue.text("no order lines in the training window: no vectors")}
                else:
                    meta = pv.metadata
                    context.log.info(f"product_embeddings {day}: {written[day]} products, {meta['words']:,} words, "
                                     f"{meta['seconds_training']} s training")
                    metadata = {k: (MetadataValue.text(v) if isinstance(v, str) else v) for k, v in meta.items()}
            outcomes = evaluate_checks(con, EMBEDDING_CHECKS, start, end)
        yield from materializations(context, settings, written, metadata)  # metadata: the newest day's training
        yield from check_results(outcomes)

    return [product_embeddings]


def _empty():
    import polars as pl

    return pl.DataFrame(schema={"day": pl.Date, "product_id": pl.Int64, "vector": pl.List(pl.Float32),
                                "purchases": pl.Int32})
