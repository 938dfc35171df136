"""The monitoring assets: `drift_report`, `offline_evaluation` and `evaluation_summary` (thin wrappers, one
partition = a run date).

``drift_report`` runs in ``daily_pipeline`` after the recommendations.
``offline_evaluation`` needs the week after its run date, so it is not part of
that job: declarative automation (:data:`LABEL_WEEK_LANDED`) materializes it
once the raw days D..D+6 exist, and the ``evaluate`` job runs it by hand. Run
before its week has landed, it records nothing and says so (the run succeeds).
``evaluation_summary`` of D pools what ``offline_evaluation`` recorded for the
run dates of the ``METRO_EVALUATION_POOL_WEEKS`` weeks up to D; it runs in the
``evaluate`` job after it, and by itself once all those days are evaluated
(:data:`POOL_EVALUATED`).
"""

from dataclasses import asdict

from dagster import (
    AssetSelection,
    AutomationCondition,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs, materializations, user_errors
from metro_assets.checking import evaluate_checks_by_day
from metro_assets.monitoring import comparison, drift, evaluation, pooling
from metro_assets.monitoring import uplift_evaluation as uplift_eval
from metro_assets.monitoring.checks import DRIFT_CHECKS, EVALUATION_CHECKS, SUMMARY_CHECKS
from metro_assets.partitions import daily_partitions, days, partition_window
from metro_assets.settings import Settings
from metro_assets.simulation.scenarios import scenario_shock
from metro_assets.warehouse import ensure_schema

OWNERS = ["team:data-science"]
HISTORY_ROWS = 14  # run dates shown in the evaluation's history table


def _history(con, upto) -> str:
    """The served model's key figures over the newest recorded run dates, as Markdown."""
    rows = con.sql(
        """SELECT run_date,
                  max(value) FILTER (WHERE policy = 'model' AND metric = 'ndcg_at_10') AS ndcg,
                  max(value) FILTER (WHERE policy = 'affinity_rule' AND metric = 'oracle_share') AS rule_share,
                  max(value) FILTER (WHERE policy = 'model' AND metric = 'oracle_share') AS share,
                  max(value) FILTER (WHERE policy = 'model' AND metric = 'oracle_share_within_caps') AS capped,
                  max(value) FILTER (WHERE policy = 'model' AND metric = 'customers_evaluated') AS customers
           FROM offline_evaluation WHERE run_date <= $upto GROUP BY run_date ORDER BY run_date DESC LIMIT $n""",
        params={"upto": upto, "n": HISTORY_ROWS},
    ).fetchall()
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    lines = ["| run date | model NDCG@10 | affinity rule oracle share | model oracle share | within caps "
             "| customers evaluated |", "|---|---|---|---|---|---|"]
    lines += [f"| {d} | {fmt(a, '.4f')} | {fmt(b, '.3f')} | {fmt(c, '.3f')} | {fmt(w, '.3f')} | {fmt(n, ',.0f')} |"
              for d, a, b, c, w, n in sorted(rows)]
    return "\n".join(lines)


#: offline_evaluation of D runs once everything it reads exists: D's recommendations and pool, and the raw
#: days D..D+6 (the label week). Dagster's eager condition without its "latest partition only" clause, so
#: past days are graded too; each day once, and again if its inputs are re-materialized.
LABEL_WEEK_LANDED = (
    AutomationCondition.eager()
    .without(AutomationCondition.in_latest_time_window())
    # ranker_model exists on retrain days only: its other days in the mapped week are never "missing"
    .replace("any_deps_missing",
             AutomationCondition.any_deps_missing().ignore(AssetSelection.assets("ranker_model")))
)


#: evaluation_summary of D runs once offline_evaluation has run for every day of D's pool window (the steady
#: state of automation, which grades each day a week later), and again when one of them is re-graded. Days
#: evaluated by hand (the evaluate job) get their summary in the same run.
POOL_EVALUATED = AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())


def build_monitoring_assets(settings: Settings) -> list:
    """``drift_report``, ``offline_evaluation`` and ``evaluation_summary`` for these settings."""
    partitions = daily_partitions(settings)
    common = dict(partitions_def=partitions, group_name="monitoring", owners=OWNERS, pool=settings.ops.pool)

    @asset(
        name="drift_report",
        description="PSI of recency, frequency, monetary, promo affinity, basket size, discount depth and the "
                    "served scores on D against the training baseline of the model version that served D "
                    "(the state as of its training day). Alerts when 3+ features reach 0.25 or the score PSI "
                    "passes 0.25 (METRO_PSI_* settings); the drift sensor then requests a retrain.",
        kinds={"duckdb", "numpy"},
        # the served model reaches it through recommendations (ranker_model partitions exist on retrain days only)
        deps=[AssetKey("recommendations"), AssetKey("customer_features"), AssetKey("offer_features"),
              # read only to rescore a baseline day that another model version served
              AssetKey("candidate_pool"), AssetKey("interaction_features"),
              # the serving version's training baseline (model_versions)
              AssetDep("ranker_model", partition_mapping=TimeWindowPartitionMapping(
                  start_offset=-7, end_offset=0, allow_nonexistent_upstream_partitions=True))],
        check_specs=check_specs(DRIFT_CHECKS, partitions),
        **common,
    )
    @user_errors
    def drift_report(context: AssetExecutionContext, warehouse: DuckDBResource):
        current = settings  # validated once, when the code location loaded
        thresholds = drift.DriftThresholds(**asdict(current.drift))
        start, end = partition_window(context)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            reports = [drift.drift_report(con, d, thresholds, current.ranker.top_k) for d in days(start, end)]
            written = {r.run_date: drift.write_drift_report(con, r) for r in reports}
            outcomes, failing_days = evaluate_checks_by_day(con, DRIFT_CHECKS, start, end)
        last = reports[-1]
        alert_days = [r.run_date.isoformat() for r in reports if r.alert]
        for r in reports:
            log = context.log.warning if r.alert else context.log.info
            log(f"drift {r.run_date} vs {r.baseline_day} ({r.model_version}): {r.reason}")
            for note in r.notes:
                context.log.warning(note)
        yield from materializations(
            context, settings, written,
            {
                "alert": bool(alert_days),
                "alert_days": MetadataValue.json(alert_days),
                "reason": last.reason,
                "psi": MetadataValue.md(drift.markdown_table(last)),
                "model_version": last.model_version,
                "baseline_day": last.baseline_day.isoformat(),
                "window": f"{start}..{end}",
                **{f"psi_{r['feature']}": float(r["psi"]) for r in last.rows.iter_rows(named=True)},
                **({"notes": "\n".join(last.notes)} if last.notes else {}),
            },
        )
        yield from check_results(outcomes, failing_days, context, days(start, end))

    @asset(
        name="offline_evaluation",
        description="What D's top 10s cause, per customer with 95% bootstrap intervals: expected, incremental "
                    "redemptions and incremental margin from the simulator's truth, the oracle share, IPS/SNIPS "
                    "estimates from the logged propensities, and NDCG/MRR/... against what the legacy policy "
                    "showed; for the served model, every model kind, six baselines and the oracle on the same "
                    "pools, plus the model's paired differences (and each kind's against LightGBM, in one "
                    "model comparison table). Records nothing until D's week is loaded.",
        kinds={"duckdb", "polars"},
        # its own group: not part of daily_pipeline, it runs itself once the label week has landed
        group_name="evaluation",
        automation_condition=LABEL_WEEK_LANDED,
        deps=[
            AssetKey("recommendations"),
            AssetKey("candidate_pool"),
            # the other model kinds rescore the pool from D's feature tables
            AssetKey("customer_features"), AssetKey("offer_features"), AssetKey("interaction_features"),
            AssetDep("ranker_model", partition_mapping=TimeWindowPartitionMapping(
                start_offset=-7, end_offset=0, allow_nonexistent_upstream_partitions=True)),
            # the baselines' inputs (members, offers and their products, what each customer bought before D)
            AssetKey("customers"), AssetKey("offers"), AssetKey("products"), AssetKey("order_items"),
            # the randomised holdout (qini_logged, issue 17)
            AssetKey("experiment_assignments"),
            # the label window [D, D + 7): this week's redemptions, orders and logged impressions (SNIPS)
            *[AssetDep(t, partition_mapping=TimeWindowPartitionMapping(
                start_offset=0, end_offset=6, allow_nonexistent_upstream_partitions=True))
              for t in ("redemptions", "orders", "impressions")],
        ],
        check_specs=check_specs(EVALUATION_CHECKS, partitions),
        **{k: v for k, v in common.items() if k != "group_name"},
    )
    @user_errors
    def offline_evaluation(context: AssetExecutionContext, warehouse: DuckDBResource):
        current = settings  # validated once, when the code location loaded
        start, end = partition_window(context)
        shock = scenario_shock(current)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            results = []
            for d in days(start, end):
                ev = evaluation.evaluate(con, d, seed=current.seed, shock=shock,
                                         max_per_category=current.ranker.max_per_category,
                                         budget=current.allocation.offer_budget)
                evaluation.write_evaluation(con, ev)
                results.append(ev)
            outcomes, failing_days = evaluate_checks_by_day(con, EVALUATION_CHECKS, start, end)
            history = _history(con, end)
            recorded = [ev for ev in results if ev.complete]
            # every model kind side by side on the newest recorded day (fit, causal value, cost)
            kinds = comparison.model_comparison(con, recorded[-1].run_date, recorded[-1].rows) if recorded else None
        last = results[-1]
        for ev in results:
            for note in ev.notes:
                context.log.warning(f"offline_evaluation {ev.run_date}: {note}")
        metadata = {
            "recorded": bool(recorded),
            "label_window": f"{last.label_start}..{last.label_end} (exclusive)",
            "window": f"{start}..{end}",
            "evaluation": MetadataValue.md(evaluation.markdown_table(last.rows)),
            "history": MetadataValue.md(history),
        }
        if kinds is not None:
            metadata["model_comparison"] = MetadataValue.md(
                f"run date {recorded[-1].run_date}\n\n" + comparison.markdown(kinds))
        if last.notes:
            metadata["notes"] = "\n".join(last.notes)
        if last.complete:
            wide = {(r["policy"], r["metric"]): r["value"] for r in last.rows.iter_rows(named=True)}
            # numeric entries: the UI plots them across partitions (the evaluation's history plot)
            for policy in evaluation.POLICIES:
                for metric in ("ndcg_at_10", "oracle_share", "oracle_share_within_caps"):
                    if (policy, metric) in wide:
                        metadata[f"{policy}_{metric}"] = float(wide[(policy, metric)])
            metadata["customers_evaluated"] = int(wide.get(("model", "customers_evaluated"), 0))
            metadata["model_version"] = last.versions.get("model", "")
            # issue 17: the daily business report and the Qini curves (PNG, also written next to the warehouse)
            metadata["business_report"] = MetadataValue.md(uplift_eval.business_report(
                last.rows, tuple(p for p in evaluation.POLICIES if p not in evaluation.MODEL_KINDS)))
            for policy in ("p_redeem", "uplift_margin"):
                if (policy, "expected_incremental_margin_at_10") in wide:
                    metadata[f"{policy}_incremental_margin"] = float(wide[(policy, "expected_incremental_margin_at_10")])
            png = uplift_eval.plot_curves(last.curves, f"Qini curves, run date {last.run_date}")
            if png:
                metadata["qini_curves"] = MetadataValue.md(uplift_eval.markdown_image(png))
                try:
                    folder = current.warehouse.parent / "plots"
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"qini_{last.run_date}.png"
                    path.write_bytes(png)
                    metadata["qini_curves_png"] = MetadataValue.path(str(path))
                except OSError as exc:
                    context.log.warning(f"Qini plot not written next to METRO_WAREHOUSE: {exc}")
        rows = {ev.run_date: ev.rows.height if ev.complete else 0 for ev in results}
        yield from materializations(context, settings, rows, metadata)
        yield from check_results(outcomes, failing_days, context, days(start, end))

    weeks = settings.evaluation.pool_weeks

    @asset(
        name="evaluation_summary",
        description=f"D's pooled evaluation: every run date offline_evaluation recorded in the {weeks} weeks up to "
                    "D (METRO_EVALUATION_POOL_WEEKS), per policy and metric per pooled customer-date, with 95% "
                    "intervals from a bootstrap over customers and run dates, and the model's paired differences. "
                    "Its metadata says plainly whether the pool tells the model apart from popularity.",
        kinds={"duckdb", "numpy"},
        group_name="evaluation",
        automation_condition=POOL_EVALUATED,
        # it reads the per-policy sums offline_evaluation stored for each run date of the window
        deps=[AssetDep("offline_evaluation", partition_mapping=TimeWindowPartitionMapping(
            start_offset=-(7 * weeks - 1), end_offset=0, allow_nonexistent_upstream_partitions=True))],
        check_specs=check_specs(SUMMARY_CHECKS, partitions),
        **{k: v for k, v in common.items() if k != "group_name"},
    )
    @user_errors
    def evaluation_summary(context: AssetExecutionContext, warehouse: DuckDBResource):
        current = settings  # validated once, when the code location loaded
        start, end = partition_window(context)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            summaries = []
            for d in days(start, end):
                summary = pooling.summarize(con, d, current.evaluation.pool_weeks, current.seed)
                pooling.write_summary(con, summary)
                summaries.append(summary)
            outcomes, failing_days = evaluate_checks_by_day(con, SUMMARY_CHECKS, start, end)
        last = summaries[-1]
        for s in summaries:
            (context.log.info if s.separated else context.log.warning)(f"evaluation_summary {s.run_date}: {s.verdict}")
            for note in s.notes:
                context.log.warning(f"evaluation_summary {s.run_date}: {note}")
        cell = {(r["policy"], r["metric"]): r["value"] for r in last.rows.iter_rows(named=True)}
        metadata = {
            "verdict": last.verdict,
            "separated": last.separated if last.separated is not None else "nothing to compare",
            "pool_window": f"{last.window[0]}..{last.window[1]} ({current.evaluation.pool_weeks} weeks)",
            "run_dates": MetadataValue.json([d.isoformat() for d in last.run_dates]),
            "customer_dates_scored": int(cell.get(("model", "customers_scored"), 0)),
            "customers_evaluated": int(cell.get(("model", "customers_evaluated"), 0)),
            "summary": MetadataValue.md(pooling.markdown(last)),
            "window": f"{start}..{end}",
        }
        for policy in ("model", "popularity"):
            for metric in pooling.SEPARATION_METRICS:
                if (policy, metric) in cell:
                    metadata[f"{policy}_{metric}"] = float(cell[(policy, metric)])
        if last.notes:
            metadata["notes"] = "\n".join(last.notes)
        rows = {s.run_date: s.rows.height for s in summaries}
        yield from materializations(context, settings, rows, metadata)
        yield from check_results(outcomes, failing_days, context, days(start, end))

    return [drift_report, offline_evaluation, evaluation_summary]
