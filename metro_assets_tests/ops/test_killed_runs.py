"""A run killed with SIGKILL mid-partition gives back the warehouse pool; a waiting run says why and stops on SIGTERM.

Real ``dagster job execute`` processes on an instance configured from the
project's ``dagster.yaml`` (the ``warehouse`` pool, limit 1). To kill a run
mid-partition, another process holds DuckDB's write lock, so the run's
``raw_tables`` step sits inside the partition holding the pool slot.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from metro_assets.runs import FREE_COMMAND, holders, main as runs_main
from metro_assets_tests.conftest import START
from metro_assets_tests.ops.test_failures import ROOT, start_locker, stop, wait_line
from metro_assets_tests.ops.tools import tool


def _env(tmp_path: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRO_", "DAGSTER_"))}
    return {**env, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), "METRO_SCALE": "tiny",
            "METRO_START_DATE": START.isoformat(), "METRO_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
            "METRO_SERVING": str(tmp_path / "serving.parquet"), "METRO_WAREHOUSE_LOCK_TIMEOUT": "300"}


def _simulate(env: dict, day: str, log: Path) -> subprocess.Popen:
    """``dagster job execute -j simulate`` for one day, in its own session, output to ``log``."""
    command = [str(tool("dagster")), "job", "execute", "-m", "metro_assets.definitions", "-j", "simulate",
               "--tags", json.dumps({"dagster/partition": day})]
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_a_killed_run_frees_the_pool_and_a_waiting_run_explains_itself(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")  # the project's instance: the pool, limit 1
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # its storage lives under $DAGSTER_HOME
    env = _env(tmp_path, home)
    locker = start_locker(tmp_path / "warehouse.duckdb")
    first = second = third = None
    try:
        wait_line(locker, "locked")
        with DagsterInstance.from_config(str(home)) as instance:
            first = _simulate(env, START.isoformat(), tmp_path / "first.log")
            holder = _until(lambda: [h for h in holders(instance) if h.worker], 60, "the first run holds the slot")[0]
            assert holder.worker.split(":")[1] == str(first.pid) and holder.dead is None

            # a second run waits: it says for what and since when, sleeps, and stops on SIGTERM
            second = _simulate(env, "2025-08-16", tmp_path / "second.log")
            waiting = _until(lambda: "waits for the warehouse pool" in (tmp_path / "second.log").read_text(),
                             60, "the second run logs its wait")
            assert waiting
            line = next(x for x in (tmp_path / "second.log").read_text().splitlines() if "waits for the" in x)
            assert f"held by run {holder.run_id}" in line and " since 20" in line and FREE_COMMAND in line
            cpu, wall = _cpu_seconds(second.pid), time.monotonic()
            time.sleep(2)
            assert (_cpu_seconds(second.pid) - cpu) / (time.monotonic() - wall) < 0.15  # no busy loop
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
            assert second.returncode != 0
            assert [h.run_id for h in holders(instance)] == [holder.run_id]  # its pending claim went with it

            # a third run waits too; the holder dies mid-partition: the waiting run finds it dead,
            # fails it, frees its slot and writes the partition the killed run was writing
            third = _simulate(env, START.isoformat(), tmp_path / "third.log")
            _until(lambda: "waits for the warehouse pool" in (tmp_path / "third.log").read_text(),
                   60, "the third run logs its wait")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
            locker.stdin.close()
            wait_line(locker, "released")
            third.wait(timeout=90)
            output = (tmp_path / "third.log").read_text()
            assert third.returncode == 0, output[-3000:]
            assert f"Freed the warehouse pool slot of run {holder.run_id} (its process (pid {first.pid}) is gone)" \
                in output
            assert instance.get_run_by_id(holder.run_id).status == DagsterRunStatus.FAILURE
            assert holders(instance) == []
            command = subprocess.run([sys.executable, "-m", "metro_assets.runs", "free-pool"], cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=60)
            assert (command.returncode, command.stdout.strip()) == (0, "the warehouse pool is free")
    finally:
        for process in (first, second, third):
            if process is not None:
                _kill(process)
        stop(locker)


def test_the_free_pool_command_frees_a_dead_runs_slot(tmp_path, monkeypatch, capsys):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default("warehouse")
        assert instance.event_log_storage.claim_concurrency_slot("warehouse", "gone-run", "raw_tables").is_claimed
    assert runs_main(["free-pool"]) == 0
    assert capsys.readouterr().out.strip() == "freed run gone-run (the run no longer exists): steps raw_tables"
    with DagsterInstance.get() as instance:
        assert holders(instance) == []
