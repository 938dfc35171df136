"""Failure behaviour: a locked warehouse, retries, re-execution from failure, a write killed mid-partition.

Real runs of the real jobs on a tiny warehouse, with another real process
holding DuckDB's write lock (:mod:`metro_assets_tests.ops.locker`). The lock
wait and the retry delay are shortened through their settings
(``METRO_WAREHOUSE_LOCK_TIMEOUT``, ``METRO_RETRY_DELAY``).
"""

import importlib.util
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, ReexecutionOptions, execute_job, reconstructable

from metro_assets.definitions import build_defs
from metro_assets.errors import SettingError
from metro_assets.errors import WarehouseLockedError
from metro_assets.settings import load_settings
from metro_assets.warehouse import open_warehouse
from metro_assets_tests.conftest import HISTORY_END, START

ROOT = Path(__file__).resolve().parents[2]
RUN_DAY = HISTORY_END


def retrain_job():
    """The real ``retrain`` job for the current settings (reconstructable: re-execution needs it)."""
    return build_defs(load_settings()).resolve_job_def("retrain")


def start_locker(warehouse: Path, *args: str) -> subprocess.Popen:
    """Another process that takes the warehouse's write lock (see locker.py); returns once it holds it."""
    locker = subprocess.Popen([sys.executable, "-m", "metro_assets_tests.ops.locker", str(warehouse), *args],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    return locker


def wait_line(process: subprocess.Popen, expected: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == expected:
            return
        if not line and process.poll() is not None:
            raise AssertionError(f"helper process exited ({process.returncode}) before printing {expected!r}")
    raise AssertionError(f"helper process did not print {expected!r} within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list:
    return [r.event_log_entry.dagster_event for r in instance.get_records_for_run(run_id, of_type=kind).records]


@pytest.fixture
def instance(tmp_path):
    """A persistent instance (re-execution reads the parent run from it)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        yield instance


def test_a_locked_warehouse_fails_the_run_clearly_and_it_resumes_from_failure(
        tiny_warehouse, monkeypatch, instance):
    monkeypatch.setenv("METRO_WAREHOUSE_LOCK_TIMEOUT", "3")
    monkeypatch.setenv("METRO_RETRY_DELAY", "1")
    # the other process takes the lock as soon as the model is written, i.e. between two steps
    locker = start_locker(tiny_warehouse, "--after-rows", "model_versions")
    try:
        failed = execute_job(reconstructable(retrain_job), instance, tags={"dagster/partition": RUN_DAY.isoformat()},
                             raise_on_error=False)
        assert not failed.success
        assert locker.poll() is None, "the locker should still hold the warehouse"
        wait_line(locker, "locked")
        failures = events(instance, failed.run_id, DagsterEventType.STEP_FAILURE)
        assert len(failures) == 1
        failure = failures[0]
        description = failure.step_failure_data.user_failure_data.description
        assert f"METRO_WAREHOUSE={tiny_warehouse} is locked by" in description
        assert "(PID " in description and "METRO_WAREHOUSE_LOCK_TIMEOUT" in description
        assert "re-execute this run from failure" in description
        # the retry policy gave it a second attempt before failing the run
        retried = [e.step_key for e in events(instance, failed.run_id, DagsterEventType.STEP_UP_FOR_RETRY)]
        assert retried == [failure.step_key]
        succeeded = {e.step_key for e in events(instance, failed.run_id, DagsterEventType.STEP_SUCCESS)}
        assert "ranker_model" in succeeded
    finally:
        locker.stdin.close()  # the operator closes the notebook
        stop(locker)

    # "Re-execute from failure": the failed step and what it blocked run; the trained model is kept.
    # (The UI re-uses the parent run's tags; execute_job needs the partition passed again.)
    resumed = execute_job(reconstructable(retrain_job), instance, tags={"dagster/partition": RUN_DAY.isoformat()},
                          reexecution_options=ReexecutionOptions.from_failure(failed.run_id, instance))
    assert resumed.success
    ran = {e.step_key for e in events(instance, resumed.run_id, DagsterEventType.STEP_SUCCESS)}
    assert failure.step_key in ran and "recommendations" in ran
    assert not ran & succeeded, f"re-ran steps that had succeeded: {ran & succeeded}"
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    try:
        models = con.sql("select count(*) from model_versions where kind not like 'uplift_%'").fetchall()[0][0]
        recommended = con.sql("select count(*) from recommendations where run_date = ?", params=[RUN_DAY]).fetchall()
    finally:
        con.close()
    kinds = 4 if importlib.util.find_spec("torch") else 3  # wide_deep trains where PyTorch is installed
    assert models == kinds and recommended[0][0] > 0


def test_a_retry_rides_out_a_short_lock(tiny_warehouse, monkeypatch, instance):
    monkeypatch.setenv("METRO_WAREHOUSE_LOCK_TIMEOUT", "1")
    monkeypatch.setenv("METRO_RETRY_DELAY", "3")
    # holds the lock until the first attempt has failed and waits for its retry, then lets go
    locker = start_locker(tiny_warehouse, "--release-on-retry", str(instance.root_directory))
    try:
        wait_line(locker, "locked")
        job = build_defs(load_settings()).resolve_job_def("simulate")
        result = job.execute_in_process(partition_key=START.isoformat(), instance=instance, raise_on_error=False)
        wait_line(locker, "released")
    finally:
        stop(locker)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert [e.step_key for e in events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)] == ["raw_tables"]


def test_a_user_error_is_not_retried(tiny_warehouse, monkeypatch, instance):
    monkeypatch.setenv("METRO_RETRY_DELAY", "60")  # a retry would show as a minute's wait and an event
    job = build_defs(load_settings()).resolve_job_def("daily_pipeline")
    started = time.monotonic()
    result = job.execute_in_process(partition_key=RUN_DAY.isoformat(), instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert f"no ranker_model trained on or before {RUN_DAY}" in failure.step_failure_data.error.message
    assert not events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert time.monotonic() - started < 60


def test_open_warehouse_names_the_holder_and_fails_fast_on_other_errors(tmp_path):
    path = tmp_path / "held.duckdb"
    duckdb.connect(str(path)).close()
    locker = start_locker(path)
    try:
        wait_line(locker, "locked")
        started = time.monotonic()
        with pytest.raises(WarehouseLockedError) as caught:
            open_warehouse(str(path), lock_timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 5
        assert f"(PID {locker.pid})" in str(caught.value)
    finally:
        locker.stdin.close()
        stop(locker)
    started = time.monotonic()
    with pytest.raises(duckdb.Error):  # not a lock: no waiting
        open_warehouse(str(tmp_path), lock_timeout=30)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("name, value, message", [
    ("METRO_WAREHOUSE_LOCK_TIMEOUT", "soon", "METRO_WAREHOUSE_LOCK_TIMEOUT='soon' is not a number of seconds"),
    ("METRO_WAREHOUSE_LOCK_TIMEOUT", "0", "METRO_WAREHOUSE_LOCK_TIMEOUT=0 must be between 0.1 and 86400 seconds"),
    ("METRO_RETRY_DELAY", "-1", "METRO_RETRY_DELAY=-1 must be between 0 and 86400 seconds"),
    ("METRO_RETRAIN_CRON", "mondays", "METRO_RETRAIN_CRON='mondays' is not a cron schedule like '0 4 * * 1'"),
])
def test_operations_settings_fail_with_one_line(tiny_env, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_the_schedule_follows_the_cron_setting(tiny_env, monkeypatch):
    monkeypatch.setenv("METRO_RETRAIN_CRON", "30 2 * * 0")
    schedule = build_defs(load_settings()).resolve_schedule_def("weekly_retrain")
    assert schedule.cron_schedule == "30 2 * * 0"


# --- a write killed in the middle of a partition ---------------------------------------------------

WRITER = """
import sys, time
from datetime import date
import polars as pl
from metro_assets.warehouse import connect, replace_partitions

class Stalled(pl.DataFrame):
    # replace_partitions converts each frame right after deleting that table's window, inside the
    # transaction: stall there, as a process dies mid-write, and report it
    def to_arrow(self, *args, **kwargs):
        print("mid-transaction", flush=True)
        time.sleep(600)

path, day = sys.argv[1], date.fromisoformat(sys.argv[2])
n = int(sys.argv[3])
with connect(path) as con:
    orders = con.sql("select * from orders where day = ?", params=[day]).pl()
    items = con.sql("select * from order_items where day = ?", params=[day]).pl()
    # a big replacement of orders (written first, for real), then the order lines (stalled)
    big = pl.concat([orders] * (n // max(orders.height, 1) + 1)).head(n)
    big = big.with_columns(order_id=pl.int_range(10_000_000, 10_000_000 + big.height, dtype=orders.schema["order_id"]))
    replace_partitions(con, {"orders": big, "order_items": Stalled(items)}, day, date.fromordinal(day.toordinal() + 1))
print("committed", flush=True)
"""


def test_a_write_killed_mid_partition_leaves_the_previous_rows(tiny_warehouse):
    day = START + timedelta(days=20)
    tables = ("orders", "order_items")

    def partition(table):
        con = duckdb.connect(str(tiny_warehouse), read_only=True)
        try:
            frame = con.sql(f"select * from {table} where day = ?", params=[day]).pl()
            total = con.sql(f"select count(*) from {table}").fetchall()[0][0]
        finally:
            con.close()
        return frame.sort(frame.columns), total

    before = {t: partition(t) for t in tables}
    assert all(frame.height > 0 for frame, _ in before.values())
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tiny_warehouse), day.isoformat(), "500000"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_line(writer, "mid-transaction")  # orders replaced (uncommitted), order_items' window deleted
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        stop(writer)
    after = {t: partition(t) for t in tables}
    for table in tables:
        assert after[table][1] == before[table][1], f"{table}: row count changed"
        assert after[table][0].equals(before[table][0]), f"{table}: the partition's rows changed"
