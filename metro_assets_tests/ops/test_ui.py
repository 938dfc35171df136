"""Operating the platform from the Dagster web UI, end to end, the way an operator does.

One `dagster dev` (webserver + daemon) runs for the module on a free
loopback port with a temporary DAGSTER_HOME and a tiny warehouse. Through
the webserver's GraphQL API (what the UI's buttons call) the tests turn on
the weekly retrain schedule and the drift sensor, launch a retrain run, then
a backfill of ``daily_pipeline`` over three days that the daemon's backfill
and run-queue daemons carry out; they check the partitions and asset checks
in the instance, the daemon's tick records, a real browser's rendering of the
asset graph, and that Ctrl-C leaves no process behind.

The schedule's cron comes from ``METRO_RETRAIN_CRON`` (every minute here, so
the daemon ticks within the test). Takes 1.5-2.5 minutes on 2 shared cores.
"""

import os
import time
from datetime import timedelta

import duckdb
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from metro_assets.definitions import build_defs
from metro_assets.settings import load_settings
from metro_assets_tests.conftest import HISTORY_END, START, write_world
from metro_assets_tests.ops.dagster_ui import (
    REPO_SELECTOR,
    DagsterDev,
    UIError,
    asset_node_labels,
    render_page,
    shows,
    wait_for,
)

pytestmark = pytest.mark.ui

BACKFILL_DAYS = [(HISTORY_END - timedelta(days=n)).isoformat() for n in (2, 1, 0)]  # 2025-09-24..26
RETRAIN_DAY = BACKFILL_DAYS[0]
RUN_TIMEOUT = 420  # generous: 2 shared cores; a tiny run takes ~15-30 s
DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A running `dagster dev` over a tiny simulated history; stopped (and checked) after the module."""
    tmp = tmp_path_factory.mktemp("ui")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRO_", "DAGSTER_"))}
    env.update(
        METRO_SCALE="tiny", METRO_SEED="42", METRO_START_DATE=START.isoformat(),
        METRO_WAREHOUSE=str(tmp / "warehouse.duckdb"), METRO_SERVING=str(tmp / "serving.parquet"),
        METRO_RETRAIN_CRON="* * * * *",  # tick every minute instead of Mondays at 04:00
        METRO_RETRY_DELAY="5",
    )
    write_world(tmp / "warehouse.duckdb")  # the simulated history, as `simulate` would write it
    server = DagsterDev(home=tmp / "dagster_home", env=env, log=tmp / "dagster_dev.log")
    started = time.monotonic()
    server.start()
    server.timings["startup"] = time.monotonic() - started
    try:
        yield server
    finally:
        if server.process is not None:
            outcome = server.stop()
            if outcome["left_after_sigint"]:
                print(f"dagster dev left {outcome['left_after_sigint']} after Ctrl-C; killed them")


def instance_of(ui) -> DagsterInstance:
    """The same instance the webserver and daemon use (read from this process)."""
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(ui.home)))


def daily_pipeline_entities():
    """The assets and asset checks of ``daily_pipeline`` (from the same definitions the server loads)."""
    layer = build_defs(load_settings()).resolve_job_def("daily_pipeline").asset_layer
    assets = set(layer.selected_asset_keys)
    checks = {k for k in layer.asset_graph.asset_check_keys if k.asset_key in assets}
    return assets, checks


# --- GraphQL: what the UI's buttons send ----------------------------------------------------------

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions runs { runId status tags { key value } } }
    ... on Error { message }
  }
}"""

RUN = """
query($id: ID!) {
  runOrError(runId: $id) { __typename ... on Run { status } ... on Error { message } }
}"""

START_SCHEDULE = """
mutation($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on Error { message }
  }
}"""

STOP_SCHEDULE = """
mutation($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename ... on ScheduleStateResult { scheduleState { status } } ... on Error { message }
  }
}"""

START_SENSOR = """
mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { id status } }
    ... on Error { message }
  }
}"""

STOP_SENSOR = """
mutation($id: String!) {
  stopSensor(id: $id) {
    __typename ... on StopSensorMutationResult { instigationState { status } } ... on Error { message }
  }
}"""

ASSET_NODES = "{ assetNodes { assetKey { path } groupName } }"


def expect(result: dict, typename: str) -> dict:
    if result["__typename"] != typename:
        raise UIError(f"expected {typename}, got {result['__typename']}: {result.get('message')}")
    return result


def launch_run(ui, job: str, partition: str) -> str:
    params = {
        "selector": {**REPO_SELECTOR, "jobName": job},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    return expect(ui.graphql(LAUNCH_RUN, {"params": params})["launchRun"], "LaunchRunSuccess")["run"]["runId"]


def run_status(ui, run_id: str) -> str:
    return expect(ui.graphql(RUN, {"id": run_id})["runOrError"], "Run")["status"]


def ticks(instance: DagsterInstance, name: str) -> list:
    states = [s for s in instance.all_instigator_state() if s.instigator_name == name]
    return [t for s in states for t in instance.get_ticks(s.instigator_origin_id, s.selector_id)]


# --- the tests ------------------------------------------------------------------------------------

def test_backfill_schedule_and_sensor_under_the_daemon(ui):
    """Schedule and sensor on, a retrain run, then a 3-day daily_pipeline backfill carried out by the daemon."""
    started = time.monotonic()
    # 1. turn on automation first: the daemon ticks it while the runs below execute
    schedule = expect(ui.graphql(START_SCHEDULE, {"selector": {**REPO_SELECTOR, "scheduleName": "weekly_retrain"}})
                      ["startSchedule"], "ScheduleStateResult")["scheduleState"]
    sensor = expect(ui.graphql(START_SENSOR, {"selector": {**REPO_SELECTOR, "sensorName": "drift_retrain"}})
                    ["startSensor"], "Sensor")["sensorState"]
    assert schedule["status"] == sensor["status"] == "RUNNING"

    # 2. a model for the first day, so daily_pipeline can score; then the backfill, as the job's
    #    "Launch backfill" button sends it. One run at a time (dagster.yaml): the queue runs the
    #    retrain first, the backfill daemon submits one daily_pipeline run per day behind it.
    retrain = launch_run(ui, "retrain", RETRAIN_DAY)
    params = {"selector": {"partitionSetName": "daily_pipeline_partition_set", "repositorySelector": REPO_SELECTOR},
              "partitionNames": BACKFILL_DAYS, "title": "ui test backfill"}
    backfill_id = expect(ui.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"],
                         "LaunchBackfillSuccess")["backfillId"]

    with instance_of(ui) as instance:
        schedule_on = True

        def settled():
            nonlocal schedule_on
            if run_status(ui, retrain) in ("FAILURE", "CANCELED"):
                raise UIError(f"the retrain run for {RETRAIN_DAY} failed; dagster dev log:\n{ui.log_tail(30)}")
            if schedule_on and any(t.run_ids for t in ticks(instance, "weekly_retrain")):
                # one scheduled run is enough (every minute here): turn it off as an operator would
                expect(ui.graphql(STOP_SCHEDULE, {"id": schedule["id"]})["stopRunningSchedule"], "ScheduleStateResult")
                schedule_on = False
            b = expect(ui.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"], "PartitionBackfill")
            busy = [r for r in instance.get_runs() if r.status not in DONE]
            done = b["status"] != "REQUESTED" and len(b["runs"]) == len(BACKFILL_DAYS) and not busy
            return b if done and not schedule_on else None

        try:
            backfill = wait_for(settled, 2 * RUN_TIMEOUT, f"the retrain run, a schedule tick and backfill "
                                f"{backfill_id} of {BACKFILL_DAYS}", interval=2)
        except UIError as exc:
            runs = [(r.job_name, r.tags.get("dagster/partition"), r.status.value) for r in instance.get_runs()]
            raise UIError(f"{exc}\nruns: {runs}\ndagster dev log:\n{ui.log_tail(40)}") from None
        ui.timings["runs"] = time.monotonic() - started
        statuses = {next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition"): r["status"]
                    for r in backfill["runs"]}
        assert statuses == {day: "SUCCESS" for day in BACKFILL_DAYS}, (statuses, ui.log_tail(30))
        failed = [(r.job_name, r.tags.get("dagster/partition"), r.status.value) for r in instance.get_runs()
                  if r.status != DagsterRunStatus.SUCCESS]
        assert not failed, failed

        # 3. the instance holds each partition of each daily asset, and each asset check's result for it
        assets, checks = daily_pipeline_entities()
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 3
        for key in assets:
            missing = set(BACKFILL_DAYS) - instance.get_materialized_partitions(key)
            assert not missing, f"{key.to_user_string()} has no materialization for {sorted(missing)}"
        day_of_run = {r.run_id: r.tags["dagster/partition"] for r in runs}
        for check in checks:
            # the checks run inside their asset's step; each evaluation belongs to that partition's run
            records = instance.event_log_storage.get_asset_check_execution_history(check, limit=50)
            evaluated = {day_of_run[r.run_id]: r for r in records
                         if r.run_id in day_of_run and r.event is not None and r.event.asset_check_evaluation}
            assert set(evaluated) == set(BACKFILL_DAYS), f"{check.name} evaluated for {sorted(evaluated)} only"
            for day, record in evaluated.items():
                evaluation = record.event.asset_check_evaluation
                assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED or not evaluation.blocking, \
                    f"blocking check {check.name} failed on {day}: {evaluation.metadata}"

        # 4. the daemon's tick records: the schedule requested a retrain (of the run date), the sensor ticked
        schedule_ticks = ticks(instance, "weekly_retrain")
        sensor_ticks = wait_for(lambda: ticks(instance, "drift_retrain"), 90, "a drift_retrain tick")
        assert any(t.status.value == "SUCCESS" and t.run_ids for t in schedule_ticks), schedule_ticks
        assert all(t.status.value in ("SUCCESS", "SKIPPED") for t in sensor_ticks), \
            [(t.status, t.error) for t in sensor_ticks]
        scheduled = instance.get_runs(RunsFilter(tags={"dagster/schedule_name": "weekly_retrain"}))
        assert [(r.job_name, r.tags["dagster/partition"]) for r in scheduled] == [("retrain", HISTORY_END.isoformat())]
        print(f"schedule ticks: {[t.status.value for t in schedule_ticks]}; "
              f"sensor ticks: {[(t.status.value, t.skip_reason) for t in sensor_ticks]}")
    state = expect(ui.graphql(STOP_SENSOR, {"id": sensor["id"]})["stopSensor"], "StopSensorMutationResult")
    assert state["instigationState"]["status"] == "STOPPED"
    ui.timings["operations"] = time.monotonic() - started


def test_asset_graph_renders_in_a_real_browser(ui):
    """Headless Chromium loads the global asset graph; every asset's node shows its name (and, after the
    backfill above, its materializations and checks: see the screenshot)."""
    assets = ui.graphql(ASSET_NODES)["assetNodes"]
    names = sorted("/".join(a["assetKey"]["path"]) for a in assets)
    groups = sorted({a["groupName"] for a in assets})
    assert {"customers", "candidate_pool", "ranker_model", "recommendations"} <= set(names)
    ui.graphql("mutation { setNuxSeen }")  # the operator clicked "Skip" on the community pop-up once
    # all groups expanded (the UI keeps this in the URL), so each asset is its own node
    url = f"{ui.url}/asset-groups?expanded=" + ",".join(f"global@global:{g}" for g in groups)
    started = time.monotonic()
    labels, missing = [], names
    for budget in (15000, 40000):  # a slow machine gets a second, longer look
        labels = asset_node_labels(render_page(url, ui.tmp, budget_ms=budget))
        missing = [n for n in names if not shows(n, labels)]
        if not missing:
            break
    assert not missing, f"asset graph rendered without {missing}; node labels seen: {labels}"
    screenshot = ui.tmp / "asset_graph.png"
    render_page(url, ui.tmp, budget_ms=30000, screenshot=screenshot)  # time for the live data too
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 50_000
    ui.timings["browser"] = time.monotonic() - started
    print(f"asset graph screenshot: {screenshot}")


def test_ctrl_c_stops_every_process_and_the_data_is_there(ui):
    """Ctrl-C (SIGINT to the session, as a terminal sends it) stops webserver, daemon, code servers and runs."""
    outcome = ui.stop()
    assert outcome["left_after_sigint"] == [], f"still running after Ctrl-C: {outcome}"
    assert outcome["seconds"] < 45
    con = duckdb.connect(str(ui.tmp / "warehouse.duckdb"), read_only=True)  # nothing holds it any more
    try:
        days = {d.isoformat() for (d,) in con.sql("select distinct run_date from recommendations").fetchall()}
    finally:
        con.close()
    assert set(BACKFILL_DAYS) <= days
    print(f"ui timings (s): startup {ui.timings.get('startup', 0):.0f}, "
          + ", ".join(f"{k} {v:.0f}" for k, v in ui.timings.items() if k != "startup")
          + f", stop {outcome['seconds']:.1f}")
