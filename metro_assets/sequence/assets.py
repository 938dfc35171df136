"""The `sequence_model` asset: SASRec for a retrain day, with its next-purchase figures (extra ``[deep]``).

Not part of the ``retrain`` job: nothing downstream reads it yet (the ranker
feature was not shown to help, docs/RETRIEVAL.md), and at the default scale
it costs minutes a retrain should not pay. Materialize it for a day on its
own (job ``sequence``, or ``dagster asset materialize --select sequence_model``).
Without PyTorch, or with ``METRO_DEEP=false``, it records one line saying so
and writes nothing.
"""

from datetime import timedelta

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset
from dagster_duckdb import DuckDBResource

from metro_assets.assets import user_errors, world_metadata
from metro_assets.deep import deep_status
from metro_assets.partitions import daily_partitions, partition_window
from metro_assets.sequence.training import fit, report_table, rows_frame
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema, replace_partitions


def build_sequence_assets(settings: Settings) -> list:
    """``sequence_model`` for these settings."""
    partitions = daily_partitions(settings)

    @asset(
        name="sequence_model",
        description="SASRec (self-attention over each customer's product sequence) trained for the day on "
                    "purchases before the ranker's training window; Hit@10 / NDCG@10 of the next purchase "
                    "against popularity and buy-again in the metadata. Needs the [deep] extra.",
        group_name="sequence",
        kinds={"pytorch", "duckdb"},
        owners=["team:data-science"],
        partitions_def=partitions,
        deps=[AssetKey("orders"), AssetKey("order_items")],
        pool=settings.ops.pool,
    )
    @user_errors
    def sequence_model(context: AssetExecutionContext, warehouse: DuckDBResource):
        day, end = partition_window(context)
        status = deep_status(settings.deep)
        if not status.available:
            context.log.info(f"sequence_model {day}: {status.reason}")
            return MaterializeResult(metadata={"status": status.reason, "dagster/row_count": 0,
                                               **world_metadata(settings)})
        from metro_assets.sequence.sasrec import SasrecConfig  # torch: only when it runs

        config = SasrecConfig(epochs=settings.sequence.epochs, max_len=settings.sequence.max_len)
        trained_before = day - timedelta(weeks=settings.ranker.train_weeks)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            row, report = fit(con, day, trained_before, config, settings.seed, status.device, context.log.info)
            replace_partitions(con, {"sequence_models": rows_frame(row)}, day, end)
        context.log.info(f"sequence_model {day}:\n{report_table(report)}")
        return MaterializeResult(metadata={
            "dagster/row_count": 1,
            **world_metadata(settings),
            "model_version": row["model_version"],
            "trained_before": str(trained_before),
            "next_purchase": MetadataValue.md(report_table(report)),
            "sasrec_hit_at_10": row["sasrec_hit_at_10"],
            "buy_again_hit_at_10": row["buy_again_hit_at_10"],
            "popularity_hit_at_10": row["popularity_hit_at_10"],
            "evaluated_customers": row["evaluated_customers"],
            "items": row["items"],
            "events": row["events"],
            "best_epoch": row["best_epoch"],
            "seconds_per_epoch": row["seconds_per_epoch"],
            "device": status.device,
        })

    return [sequence_model]
