"""`bandit_simulation`: every policy through the same simulated weeks, one partition per scenario (issue 18).

It drives its own copies of the world of ``METRO_SEED`` and ``METRO_SCALE``
(the world is deterministic per seed, so it is the same world the raw tables
hold) from ``METRO_BANDIT_START`` (default: the day after the history) for
``METRO_BANDIT_WEEKS`` weeks, and writes one row per (policy, day) to the
``bandit_simulation`` table, replacing the scenario's rows in one
transaction. The materialization carries the summary table and the
cumulative-regret plot (PNG, inline and as a file next to the warehouse).

It does not join the warehouse pool: its minutes of simulation need no
warehouse, which it opens only for the final write (waiting
``METRO_WAREHOUSE_LOCK_TIMEOUT`` for a writer that holds it), so daily runs
are not held up behind it.
"""


import base64
from datetime import timedelta

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    AssetDep,
    AssetKey,
    TimeWindowPartitionMapping,
    asset,
)
from dagster_duckdb import DuckDBResource

from metro_assets.assets import user_errors, world_metadata
from metro_assets.bandit.environment import SCENARIOS
from metro_assets.bandit.plots import regret_png
from metro_assets.bandit.production import fit_posterior, write_posterior
from metro_assets.partitions import daily_partitions, days, partition_window
from metro_assets.bandit.run import run_scenario, summary_table
from metro_assets.settings import Settings
from metro_assets.warehouse import ensure_schema, replace_rows

scenario_partitions = StaticPartitionsDefinition(list(SCENARIOS))


def write_bandit_rows(con, frame: pl.DataFrame, scenario: str, seed: int) -> int:
    """Replace the scenario's rows of ``bandit_simulation`` in one transaction."""
    return replace_rows(con, "bandit_simulation", frame.with_columns(seed=pl.lit(seed, dtype=pl.Int64)),
                        "scenario", scenario)


def build_bandit_assets(settings: Settings):
    @asset(
        name="bandit_simulation",
        description="Thompson sampling, epsilon-greedy, the weekly batch ranker, random and the oracle driven "
                    "through the same simulated weeks of one scenario (common random numbers): per day and "
                    "policy, redemptions, expected and incremental figures from the truth, regret against the "
                    "oracle and running sums; the cumulative-regret plot on the materialization.",
        group_name="bandit",
        kinds={"duckdb", "polars", "numpy"},
        partitions_def=scenario_partitions,
        owners=["team:data-science"],
        tags={"metro/stage": "bandit"},
        check_specs=[AssetCheckSpec("bandit_regret_is_never_negative", asset="bandit_simulation",
                                    description="Every (policy, day) has regret >= 0 and the oracle's is 0."),
                     AssetCheckSpec("bandit_policies_meet_the_same_customers", asset="bandit_simulation",
                                    description="Each day, every policy met the same customers (common random "
                                                "numbers).")],
    )
    @user_errors
    def bandit_simulation(context: AssetExecutionContext, warehouse: DuckDBResource):
        if settings.source != "simulation":
            raise Failure(description=f"bandit_simulation drives the simulator; METRO_SOURCE={settings.source} "
                                      "holds imported data, which cannot answer a policy's choices",
                          allow_retries=False)
        scenario = context.partition_key
        start = settings.bandit_start
        days = 7 * settings.bandit.weeks
        context.log.info(f"bandit_simulation {scenario}: {start} + {days} days, scale {settings.scale.name}, "
                         f"seed {settings.seed}")
        frame, info = run_scenario(settings.scale, settings.seed, settings.start_date, start, days, scenario,
                                   k=settings.ranker.top_k, max_per_category=settings.ranker.max_per_category,
                                   exploration=settings.policy.exploration,
                                   holdout_share=settings.policy.holdout_share, progress=context.log.info)
        with warehouse.get_connection() as con:
            ensure_schema(con)
            written = write_bandit_rows(con, frame, scenario, settings.seed)
            checks = con.sql(
                """SELECT count(*) FILTER (WHERE regret < 0 OR (policy = 'oracle' AND regret > 1e-9)),
                          count(DISTINCT customers_reached || '@' || day) - count(DISTINCT day)
                   FROM bandit_simulation WHERE scenario = $s""", params={"s": scenario}).fetchall()[0]
        png = regret_png(frame, f"{scenario}: scale {settings.scale.name}, seed {settings.seed}, "
                                f"{start}..{start + timedelta(days=days - 1)}")
        plot = settings.warehouse.parent / "bandit" / f"{scenario}_{settings.scale.name}_{settings.seed}.png"
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(png)
        table = summary_table(frame, start, days, info.get("new_offers_launch"))
        yield MaterializeResult(metadata={
            "dagster/row_count": written,
            "scenario": scenario,
            "window": f"{start}..{start + timedelta(days=days)} (exclusive)",
            "summary": MetadataValue.md(table),
            "cumulative_regret_plot": MetadataValue.md(
                f"![cumulative regret](data:image/png;base64,{base64.b64encode(png).decode()})"),
            "plot_file": MetadataValue.path(str(plot)),
            "seconds_per_policy": MetadataValue.json(info["seconds"]),
            **{f"{p}_cumulative_regret": float(v) for p, v in frame.group_by("policy").agg(
                pl.col("regret").sum()).iter_rows()},
            **world_metadata(settings),
        })
        yield AssetCheckResult(check_name="bandit_regret_is_never_negative", passed=checks[0] == 0,
                               metadata={"bad_rows": int(checks[0])})
        yield AssetCheckResult(check_name="bandit_policies_meet_the_same_customers", passed=checks[1] == 0,
                               metadata={"days_with_differences": int(checks[1])})

    if settings.bandit.policy != "thompson":
        return [bandit_simulation]
    partitions = daily_partitions(settings)

    @asset(
        name="bandit_posterior",
        description="METRO_POLICY=thompson: day D's Laplace posterior of a logistic regression over the ranker's "
                    "features, updated from the log before D (D-1's outcomes included; open redemption windows "
                    "weighted by the delay distribution), around the weekly logistic-regression ranker. "
                    "recommendations samples each pair's score from it.",
        group_name="recommendations",  # part of daily_pipeline, before recommendations
        kinds={"duckdb", "numpy"},
        owners=["team:data-science"],
        partitions_def=partitions,
        deps=[AssetKey(t) for t in ("customers", "products", "offers", "orders", "order_items", "impressions",
                                    "redemptions")]
        + [AssetDep("ranker_model", partition_mapping=TimeWindowPartitionMapping(
            start_offset=-7, end_offset=0, allow_nonexistent_upstream_partitions=True))],
        pool=settings.ops.pool,
    )
    @user_errors
    def bandit_posterior(context: AssetExecutionContext, warehouse: DuckDBResource):
        start, end = partition_window(context)
        rows = []
        with warehouse.get_connection() as con:
            ensure_schema(con)
            for day in days(start, end):  # one posterior per day, each from the log before it
                row = fit_posterior(con, day, settings.seed, settings.ranker.train_weeks)
                write_posterior(con, row)
                rows.append(row)
                context.log.info(f"bandit_posterior {day}: {row['impressions']} impressions, "
                                 f"{row['positives']} redeemed, prior {row['model_version']}")
        last = rows[-1]
        yield MaterializeResult(metadata={
            "dagster/row_count": len(rows), "prior_model_version": last["model_version"],
            "impressions": last["impressions"], "positives": last["positives"], "rows_fitted": last["rows_fitted"],
            **world_metadata(settings)})

    return [bandit_simulation, bandit_posterior]
