"""The ranker assets: `ranker_model` (retrain days only) and `recommendations` (daily)."""

import json
import time
from datetime import timedelta

import polars as pl
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TimeWindowPartitionMapping,
    asset,
)
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs, materializations, user_errors, world_metadata
from metro_assets.bandit.production import thompson_pool_scores
from metro_assets.checking import evaluate_checks, evaluate_checks_by_day
from metro_assets.partitions import daily_partitions, days, partition_window
from metro_assets.errors import DataError
from metro_assets.ranking import uplift
from metro_assets.ranking.allocation import allocate_day, summary
from metro_assets.ranking.checks import MODEL_CHECKS, RECOMMENDATION_CHECKS
from metro_assets.ranking.reasons import reasons_for
from metro_assets.ranking.scoring import selected_model
from metro_assets.ranking.training import model_rows, train_rankers, training_set, window_rule
from metro_assets.serving.publish import mark_committed
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema, replace_partitions

RAW_INPUTS = ["customers", "products", "offers", "orders", "order_items", "impressions", "redemptions"]


def _importance_table(importances: dict, top: int = 10) -> str:
    rows = sorted(importances.items(), key=lambda kv: -abs(kv[1]))[:top]
    return "| feature | weight |\n|---|---|\n" + "\n".join(f"| {k} | {v:+.4f} |" for k, v in rows)


def _binding_table(binding: pl.DataFrame, top: int = 20) -> str:
    if binding.height == 0:
        return "no cap binds"
    rows = binding.sort("pairs_dropped", descending=True).head(top).iter_rows(named=True)
    return ("| offer | cap | left | expected redemptions | expected discount | pairs dropped |\n|---|---|---|---|---|---|\n"
            + "\n".join(f"| {r['offer_id']} | {r['cap']} | {r['remaining']:.2f} | {r['used_redemptions']:.2f} "
                        f"| {r['used_budget']:.2f} | {r['pairs_dropped']} |" for r in rows))


def build_ranking_assets(settings: Settings):
    partitions = daily_partitions(settings)

    @asset(
        name="ranker_model",
        description="The rankers (LightGBM, logistic regression and, with PyTorch, Wide & Deep) trained on the "
                    "impressions whose labels closed before the day; the best on the last week serves. With them, "
                    "the uplift learners (S, T, X, transformed outcome) on the randomised exposure. "
                    "Materialized on retrain days only.",
        group_name="model",
        kinds={"lightgbm", "scikitlearn", "pytorch", "duckdb"},
        owners=["team:data-science"],
        partitions_def=partitions,
        # experiment_assignments: the holdout arm of the uplift learners' randomised units
        deps=[AssetKey(t) for t in (*RAW_INPUTS, "experiment_assignments")],
        check_specs=check_specs(MODEL_CHECKS, partitions),
        pool=settings.ops.pool,
        retry_policy=RetryPolicy(max_retries=1, delay=settings.ops.retry_delay),  # METRO_RETRY_DELAY
    )
    @user_errors
    def ranker_model(context: AssetExecutionContext, warehouse: DuckDBResource):
        current = settings  # validated once, when the code location loaded
        day, end = partition_window(context)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            r = current.ranker
            rule = window_rule(r)
            ts = training_set(con, day, rule, r.negatives_per_positive, current.seed, current.embedding)
            trained, reason = train_rankers(ts, current.deep)  # METRO_DEEP / METRO_DEVICE
            rows = model_rows(day, ts, trained, reason)
            # the uplift learners (issue 17) travel in the same partition: re-training replaces both together
            try:
                us = uplift.uplift_training_set(con, day, current.allocation.uplift_weeks, seed=current.seed)
                learners = uplift.train_uplift_learners(us)
                rows = pl.concat([rows, uplift.model_rows(day, us, learners)], how="diagonal_relaxed")
            except DataError as exc:
                learners = []
                context.log.warning(f"no uplift learner for {day}: {exc}")
            replace_partitions(con, {"model_versions": rows}, day, end)
            outcomes = evaluate_checks(con, MODEL_CHECKS, day, end)
        chosen = next(m for m in trained if m.selected)
        metrics = ("| model | validation AUC | validation log-loss | grouped AUC | training s | serves |\n"
                   "|---|---|---|---|---|---|\n"
                   + "\n".join(
            f"| {m.stored.kind} | {m.metrics['auc'] if m.metrics['auc'] is None else round(m.metrics['auc'], 4)} "
            f"| {m.metrics['log_loss'] if m.metrics['log_loss'] is None else round(m.metrics['log_loss'], 4)} "
            f"| {'' if m.metrics.get('grouped_auc') is None else round(m.metrics['grouped_auc'], 4)} "
            f"| {'' if m.seconds is None else round(m.seconds, 1)} "
            f"| {'yes' if m.selected else ''} |" for m in trained))
        (context.log.warning if "WARNING" in reason else context.log.info)(f"ranker for {day}: {reason}")
        yield MaterializeResult(
            metadata={
                "dagster/row_count": len(trained),  # model_versions rows: one per model kind
                **world_metadata(settings),
                "model_version": f"{day}-{chosen.stored.kind}",
                "selection": reason,
                **({"warning": reason[reason.index("WARNING"):]} if "WARNING" in reason else {}),
                "train_label": ts.label,
                "embedding_affinity": ts.embedding_note,
                "validation": MetadataValue.md(metrics),
                "top_features": MetadataValue.md(_importance_table(chosen.stored.importances)),
                "train_rows": ts.train.height,
                "train_positives": int(ts.train["label"].sum()),
                "validation_rows": ts.validation.height,
                "negative_sampling_rate": round(ts.sampling_rate, 4),
                "window": f"{ts.window.start}..{ts.window.end} (validation from {ts.window.validation_start})",
                **{f"{m.stored.kind}_auc": m.metrics["auc"] for m in trained if m.metrics["auc"] is not None},
                **{f"{m.model.kind}_validation_qini": m.validation_qini for m in learners
                   if m.validation_qini is not None},
                "best_uplift": next((m.model.kind for m in learners if m.best), "none"),
                **({"wide_deep": reason[reason.index("wide_deep skipped"):].split(";")[0]}
                   if "wide_deep skipped" in reason else {}),
            }
        )
        yield from check_results(outcomes)

    @asset(
        name="recommendations",
        description="Each customer's top offers for the day: the day's candidate pool, with its features read "
                    "from the day's feature tables, scored by the newest model trained on or before it (p_redeem) "
                    "and the best uplift learner (uplift), then allocated under METRO_OBJECTIVE within every "
                    "offer's cap across the day's customers (ranking/allocation.py); each chosen offer with its "
                    "reasons (the ranker's strongest contributions, in plain words).",
        group_name="recommendations",
        kinds={"duckdb"},
        owners=["team:data-science"],
        partitions_def=partitions,
        deps=[
            AssetKey("candidate_pool"),
            AssetKey("customer_features"),
            AssetKey("offer_features"),
            AssetKey("interaction_features"),
            AssetKey("offers"),    # each offer's product and category: one offer per product, few per category
            AssetKey("products"),
            AssetKey("redemptions"),  # what is left of each offer's cap before the day (the allocation)
            # the newest model of the last week (weekly retrains); older ones are found too
            AssetDep("ranker_model", partition_mapping=TimeWindowPartitionMapping(start_offset=-7, end_offset=0,
                                                                                   allow_nonexistent_upstream_partitions=True)),
            # METRO_POLICY=thompson (issue 18): scores are drawn from the day's posterior
            *([AssetKey("bandit_posterior")] if settings.bandit.policy == "thompson" else []),
        ],
        check_specs=check_specs(RECOMMENDATION_CHECKS, partitions),
        pool=settings.ops.pool,
    )
    @user_errors
    def recommendations(context: AssetExecutionContext, warehouse: DuckDBResource):
        current = settings  # validated once, when the code location loaded
        start, end = partition_window(context)
        k = current.ranker.top_k
        written, tops = {}, {}
        with warehouse.get_connection() as con:
            ensure_schema(con)
            a = current.allocation
            for day in days(start, end):  # each day scored by its own model and replaced on its own
                # METRO_POLICY=thompson (issue 18): the pool's scores are draws from the day's posterior
                sampled = thompson_pool_scores(con, day, current.seed) if current.bandit.policy == "thompson" else None
                done = allocate_day(con, day, a.objective, k, current.ranker.max_per_category, a.offer_budget,
                                    scores=sampled)
                top = done.allocation.chosen
                top = top.select("customer_id", "offer_id", "strategy", "rank", "p_redeem", "uplift",
                                 score=pl.col("value"), run_date=pl.lit(day),
                                 model_version=pl.lit(done.model_version))
                started = time.perf_counter()  # why each chosen offer: explained from the chosen rows only
                # thompson lists are explained by their prior, the weekly logistic regression
                _, model = selected_model(con, day, kind="logistic_regression" if sampled is not None else None)
                top = top.with_columns(reasons=reasons_for(con, day, model, top))
                reasons_seconds = time.perf_counter() - started
                replace_partitions(con, {"recommendations": top}, day, day + timedelta(days=1), column="run_date")
                written[day], tops[day] = top.height, (top, done.model_version, done, reasons_seconds)
            outcomes, failing_days = evaluate_checks_by_day(
                con, RECOMMENDATION_CHECKS, start, end,
                {"top_k": k, "max_per_category": current.ranker.max_per_category,
                 # lists are full unless the margin objective or a binding cap left offers out
                 "exact": a.objective == "redemptions" and all(
                     t[2].allocation.binding.height == 0 for t in tops.values())})
            try:  # the API compares it with the snapshot serving_snapshot publishes next
                mark_committed(con, current.serving)
            except OSError as exc:
                context.log.warning(f"committed marker next to METRO_SERVING={current.serving} not written: {exc}")
        for day, (top, version, done, seconds) in tops.items():
            context.log.info(f"{day}: {top.height} recommendations for {top['customer_id'].n_unique()} customers "
                             f"with {version} ({done.pairs_scored} pairs scored; objective {done.objective}, "
                             f"uplift {done.uplift_version or 'none'}; {done.allocation.binding.height} caps binding, "
                             f"value lost to caps {done.allocation.value_lost:.4f}; reasons in {seconds:.1f} s)")
        top, version, done, seconds = tops[max(tops)]  # the metadata describes the newest day of the run
        pairs = done.pairs_scored
        yield from materializations(
            context, settings, written,
            {
                "model_version": version,
                "pairs_scored": pairs,
                "customers": top["customer_id"].n_unique(),
                "recommendations": top.height,
                "mean_score_top1": float(top.filter(pl.col("rank") == 1)["score"].mean() or 0.0),
                "objective": done.objective,
                "uplift_version": done.uplift_version or "none",
                **summary(done.allocation),
                "caps_binding_offers": MetadataValue.md(_binding_table(done.allocation.binding)),
                "reasons_seconds": round(seconds, 2),
                "strategy_share": MetadataValue.json(
                    json.loads(top.group_by("strategy").len().with_columns(
                        share=(pl.col("len") / pl.col("len").sum()).round(3)).select("strategy", "share")
                        .write_json())),
            },
        )
        yield from check_results(outcomes, failing_days, context, days(start, end))

    return [ranker_model, recommendations]
