"""Dagster's own idioms, checked through real runs and the instance API.

Per-partition metadata after a single-run backfill, partition-aware checks,
column schemas from schema.sql, settings on the record, and the automation
that grades a day once its label week has landed.
"""

from datetime import date, timedelta

import duckdb
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DailyPartitionsDefinition,
    asset,
    evaluate_automation_conditions,
    materialize,
)
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results, check_specs
from metro_assets.checking import Check, evaluate_checks_by_day
from metro_assets.definitions import build_defs
from metro_assets.partitions import days
from metro_assets.serving import SNAPSHOT_COLUMNS
from metro_assets.settings import load_settings
from metro_assets.raw.assets import build_raw_assets
from metro_assets.simulation.world import RAW_TABLES


def _latest(instance, key: str, partition: str):
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[partition]), limit=1).records
    return records[0].event_log_entry.asset_materialization


def test_a_single_run_backfill_records_each_days_own_row_count(tiny_warehouse, tiny_env):
    instance = DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": "2025-09-01", "dagster/asset_partition_range_end": "2025-09-03"}
    result = materialize([build_raw_assets(tiny_env)], instance=instance, tags=tags,
                         resources={"warehouse": DuckDBResource(database=str(tiny_env.warehouse))})
    assert result.success
    con = duckdb.connect(str(tiny_env.warehouse), read_only=True)
    counts = {(t, d.isoformat()): n for t in RAW_TABLES
              for d, n in con.execute(f"select day, count(*) from {t} group by day").fetchall()}
    con.close()
    for table in ("orders", "order_items", "impressions"):
        seen = set()
        for day in ("2025-09-01", "2025-09-02", "2025-09-03"):
            event = _latest(instance, table, day)
            assert event.metadata["dagster/row_count"].value == counts[(table, day)]
            assert event.metadata["metro/world"].value == "scale tiny, seed 42, source simulation"
            seen.add(counts[(table, day)])
        assert len(seen) > 1, f"{table}: the days should differ, or this test proves nothing"


def test_a_failing_check_shows_on_the_day_it_failed(tmp_path):
    partitions = DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-10")
    rule = Check("amounts_are_positive", "amounts", "amounts are positive",
                 "select day from amounts where amount <= 0 and day >= $start and day < $end")

    @asset(partitions_def=partitions, check_specs=check_specs([rule], partitions))
    def amounts(context, warehouse: DuckDBResource):
        start, end = (w.date() for w in (context.partition_time_window.start, context.partition_time_window.end))
        with warehouse.get_connection() as con:
            con.execute("create or replace table amounts as select d::date as day, "
                        "case when d = date '2025-01-02' then -1 else 5 end as amount "
                        "from range(date '2025-01-01', date '2025-01-04', interval 1 day) t(d)")
            outcomes, failing_days = evaluate_checks_by_day(con, [rule], start, end)
        yield from check_results(outcomes, failing_days, context, days(start, end))

    instance = DagsterInstance.ephemeral()
    result = materialize([amounts], instance=instance, raise_on_error=False,
                         resources={"warehouse": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
                         tags={"dagster/asset_partition_range_start": "2025-01-01",
                               "dagster/asset_partition_range_end": "2025-01-03"})
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("amounts"), "amounts_are_positive"), limit=10)
    by_partition = {r.partition: r.status.value for r in history if r.partition}
    assert by_partition == {"2025-01-01": "SUCCEEDED", "2025-01-02": "FAILED", "2025-01-03": "SUCCEEDED"}
    window = [e for e in result.get_asset_check_evaluations() if e.partition is None]
    assert not window[0].passed and window[0].metadata["failing_days"].value == "2025-01-02"


def test_a_days_checks_are_recorded_on_that_day(tiny_warehouse, tiny_env):
    from metro_assets.features.assets import build_feature_assets

    instance = DagsterInstance.ephemeral()
    customer_features = [a for a in build_feature_assets(tiny_env) if a.key == AssetKey("customer_features")]
    result = materialize(customer_features, instance=instance, partition_key="2025-09-20",
                         resources={"warehouse": DuckDBResource(database=str(tiny_env.warehouse))})
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and {e.partition for e in evaluations} == {"2025-09-20"}
    assert _latest(instance, "customer_features", "2025-09-20").metadata["dagster/row_count"].value > 0


def test_every_table_asset_describes_its_columns_from_the_schema(tiny_env):
    defs = build_defs(tiny_env)
    graph = defs.resolve_asset_graph()
    con = duckdb.connect()
    from metro_assets.warehouse import ensure_schema
    ensure_schema(con)
    described = 0
    for key in graph.get_all_asset_keys():
        metadata = graph.get(key).metadata
        schema = metadata.get("dagster/column_schema")
        assert schema is not None, f"{key.to_user_string()} has no column schema"
        if key.to_user_string() == "serving_snapshot":  # a file, not a table: the file contract's columns
            assert [c.name for c in schema.columns] == list(SNAPSHOT_COLUMNS)
            continue
        table = metadata["dagster/table_name"]
        names = [c[0] for c in con.execute(f"describe {table}").fetchall()]
        assert [c.name for c in schema.columns] == names
        described += sum(1 for c in schema.columns if c.description)
    assert described >= 40  # the comments of schema.sql reach the UI


def test_jobs_put_the_settings_on_the_record(tiny_env):
    defs = build_defs(tiny_env)
    for name in ("simulate", "daily_pipeline", "retrain", "evaluate"):
        tags = defs.resolve_job_def(name).tags
        assert tags["metro/scale"] == "tiny" and tags["metro/seed"] == "42"
        assert tags["metro/source"] == "simulation"
    daily = defs.resolve_job_def("daily_pipeline").asset_layer.executable_asset_keys
    assert AssetKey("drift_report") in daily and AssetKey("offline_evaluation") not in daily


def test_offline_evaluation_runs_itself_once_its_label_week_has_landed(tiny_env):
    defs = build_defs(tiny_env)
    instance = DagsterInstance.ephemeral()
    day = date(2025, 9, 10)

    def landed(key, d):
        instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=d.isoformat()))

    label_week = ("orders", "redemptions", "impressions")
    parents = defs.resolve_asset_graph().get(AssetKey("offline_evaluation")).parent_keys
    for key in parents:
        if key.to_user_string() not in label_week:
            landed(key, day - timedelta(days=2) if key.to_user_string() == "ranker_model" else day)
    for offset in range(6):  # D..D+5: the label week is not complete yet
        for key in label_week:
            landed(key, day + timedelta(days=offset))
    first = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=AssetSelection.all())
    assert first.get_requested_partitions(AssetKey("offline_evaluation")) == set()
    for key in label_week:
        landed(key, day + timedelta(days=6))
    second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor,
                                            asset_selection=AssetSelection.all())
    assert second.get_requested_partitions(AssetKey("offline_evaluation")) == {day.isoformat()}


def test_a_warehouse_from_an_older_schema_gains_the_new_columns(tmp_path):
    from metro_assets.warehouse import ensure_schema

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    # impressions as World v1 wrote them: no position, propensity or is_exploration
    con.execute("create table impressions (impression_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, "
                "offer_id BIGINT NOT NULL, shown_timestamp TIMESTAMP NOT NULL, channel VARCHAR, day DATE NOT NULL)")
    con.execute("insert into impressions values (1, 2, 3, timestamp '2025-09-01 10:00', 'app', date '2025-09-01')")
    ensure_schema(con)
    ensure_schema(con)  # idempotent
    columns = [c[0] for c in con.execute("describe impressions").fetchall()]
    assert {"position", "propensity", "is_exploration"} <= set(columns)
    assert con.execute("select count(*), count(position) from impressions").fetchall() == [(1, 0)]
    con.close()


def test_evaluation_summary_runs_itself_once_its_weeks_are_graded(tiny_env, monkeypatch):
    monkeypatch.setenv("METRO_EVALUATION_POOL_WEEKS", "1")  # the summary of D pools D - 6 .. D
    defs = build_defs(load_settings())
    instance = DagsterInstance.ephemeral()
    day = date(2025, 9, 10)
    summary = AssetKey("evaluation_summary")

    def graded(d):
        instance.report_runless_asset_event(AssetMaterialization(asset_key="offline_evaluation",
                                                                 partition=d.isoformat()))

    for offset in range(1, 7):  # D - 6 .. D - 1 graded, D not yet
        graded(day - timedelta(days=offset))
    first = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=AssetSelection.all())
    assert first.get_requested_partitions(summary) == set()
    graded(day)
    second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor,
                                            asset_selection=AssetSelection.all())
    assert second.get_requested_partitions(summary) == {day.isoformat()}
