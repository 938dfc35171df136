"""The cluster instance (``deploy/dagster.yaml``) on a real PostgreSQL server: a run goes through it end to end.

The instance is loaded from the deploy config as it is, except the run
launcher: there is no Kubernetes cluster on this machine, so the
``K8sRunLauncher`` is swapped for Dagster's default launcher (a run worker
process on this host; ``test_k8s_launcher.py`` checks the launcher's own
config). Everything else is the deployment's: Postgres run, event-log and
schedule storage from the ``DAGSTER_PG_*`` variables, the QueuedRunCoordinator
drained by a real ``dagster-daemon``, the run and pool limits. The run is
``simulate`` for three tiny days, submitted with ``dagster job launch``; the
checks read Postgres directly (SQL through psycopg2), not only through Dagster.
"""

import json
import os
import subprocess
import time
import uuid
from datetime import timedelta

import duckdb
import pytest
import yaml
from dagster import DagsterEventType

from metro_assets.raw.assets import build_raw_assets
from metro_assets.runs import WORKER_TAG
from metro_assets_tests.conftest import START
from metro_assets_tests.deploy.conftest import ROOT, deploy_instance_config
from metro_assets_tests.deploy.postgres import query
from metro_assets_tests.ops.dagster_ui import stop_session
from metro_assets_tests.ops.tools import tool

DAYS = [START + timedelta(days=i) for i in range(3)]
RUN_TIMEOUT = 150.0  # seconds from launch to a finished run (typically ~20 s)
DEFAULT_LAUNCHER = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}


def write_instance(home, launcher: dict) -> None:
    """``deploy/dagster.yaml`` into ``home``, with ``launcher`` as its run launcher."""
    config = deploy_instance_config()
    config["run_launcher"] = launcher
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def deploy_env(tmp_path, tiny_env, dagster_database) -> dict[str, str]:
    """The environment of the webserver/daemon/run pods, here: tiny settings, Postgres, a DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    write_instance(home, DEFAULT_LAUNCHER)  # no cluster here: run workers are local processes
    env = {**os.environ, **dagster_database, "DAGSTER_HOME": str(home), "METRO_RETRY_DELAY": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return env


def test_a_run_queued_through_the_deploy_instance_is_recorded_in_postgres(
        deploy_env, postgres_server, tiny_env, tmp_path):
    workspace = ROOT / "workspace.yaml"
    # the schema first, as a deployment does (the chart's migrate job): a daemon and a CLI that both find an
    # empty database race to create the same tables ("type secondary_indexes already exists"), seen here
    migrated = subprocess.run([str(tool("dagster")), "instance", "migrate"], cwd=ROOT, env=deploy_env,
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    daemon_log = open(tmp_path / "daemon.log", "wb")
    daemon = subprocess.Popen([str(tool("dagster-daemon")), "run", "-w", str(workspace)], cwd=ROOT,
                              env=deploy_env, stdout=daemon_log, stderr=subprocess.STDOUT, start_new_session=True)
    run_id = str(uuid.uuid4())
    pg = postgres_server.connect(deploy_env["DAGSTER_PG_DB"])
    try:
        tags = {"dagster/asset_partition_range_start": DAYS[0].isoformat(),
                "dagster/asset_partition_range_end": DAYS[-1].isoformat()}
        launched = subprocess.run([str(tool("dagster")), "job", "launch", "-w", str(workspace), "-j", "simulate",
                                   "--run-id", run_id, "--tags", json.dumps(tags)],
                                  cwd=ROOT, env=deploy_env, capture_output=True, text=True, timeout=120)
        assert launched.returncode == 0, launched.stderr[-2000:]

        # the queued run is picked up by the daemon, launched, executed: watch its row in Postgres
        deadline = time.monotonic() + RUN_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            rows = query(pg, "SELECT status FROM runs WHERE run_id = %s", run_id)
            status = rows[0][0] if rows else None
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(0.5)
        errors = query(pg, "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type "
                           "IN ('STEP_FAILURE', 'PIPELINE_FAILURE', 'ENGINE_EVENT') ORDER BY id", run_id)
        assert status == "SUCCESS", (f"run {run_id} ended {status}; events: {[e[0][:400] for e in errors][-3:]}; "
                                     f"daemon log: {(tmp_path / 'daemon.log').read_text()[-2000:]}")

        # the run itself, as Postgres holds it
        [(job_name,)] = query(pg, "SELECT pipeline_name FROM runs WHERE run_id = %s", run_id)
        assert job_name == "simulate"
        tags_stored = dict(query(pg, "SELECT key, value FROM run_tags WHERE run_id = %s", run_id))
        assert tags_stored["dagster/asset_partition_range_start"] == DAYS[0].isoformat()
        assert WORKER_TAG in tags_stored  # the project's executor ran the steps (metro_assets/runs.py)

        # its event log: queued by the coordinator, launched by the daemon, started, succeeded, in that order
        kinds = [k for (k,) in query(pg, "SELECT dagster_event_type FROM event_logs WHERE run_id = %s "
                                         "AND dagster_event_type IS NOT NULL ORDER BY id", run_id)]
        lifecycle = [DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START,
                     DagsterEventType.RUN_SUCCESS]
        stored = [e.value for e in lifecycle]  # e.g. RUN_START is stored as PIPELINE_START
        assert [k for k in kinds if k in stored] == stored, kinds

        # one materialization per raw table and day, with its partition, in the event log and the asset index
        raw_tables = {key.to_user_string() for key in build_raw_assets(tiny_env).keys}
        materialized = query(pg, "SELECT asset_key, partition FROM event_logs WHERE run_id = %s "
                                 "AND dagster_event_type = %s", run_id, DagsterEventType.ASSET_MATERIALIZATION.value)
        assert sorted((json.loads(key)[0], part) for key, part in materialized) == sorted(
            (table, day.isoformat()) for table in raw_tables for day in DAYS)
        indexed = {json.loads(key)[0] for (key,) in query(
            pg, "SELECT asset_key FROM asset_keys WHERE last_materialization_timestamp IS NOT NULL")}
        assert indexed == raw_tables
        checks = query(pg, "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                       run_id, DagsterEventType.ASSET_CHECK_EVALUATION.value)[0][0]
        assert checks > 0

        # the warehouse pool's slot was claimed in Postgres and is free again
        slots = query(pg, "SELECT concurrency_key, run_id FROM concurrency_slots WHERE concurrency_key = %s",
                      "warehouse")
        assert slots and all(holder is None for _, holder in slots), slots
        claimed = query(pg, "SELECT count(*) FROM event_logs WHERE run_id = %s AND event LIKE %s",
                        run_id, '%"warehouse"%')[0][0]
        assert claimed > 0

        # the daemon kept its heartbeats in the same database
        daemons = {kind for (kind,) in query(pg, "SELECT daemon_type FROM daemon_heartbeats")}
        assert "QUEUED_RUN_COORDINATOR" in daemons

        # and the run wrote the warehouse
        with duckdb.connect(str(tiny_env.warehouse), read_only=True) as con:
            days = [d for (d,) in con.execute("SELECT DISTINCT day FROM orders ORDER BY day").fetchall()]
        assert days == DAYS
    finally:
        pg.close()
        left = stop_session(daemon)
        daemon_log.close()
    assert not left, f"processes of the daemon still running after SIGTERM: {left}"
