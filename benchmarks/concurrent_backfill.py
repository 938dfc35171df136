"""A 7-day backfill of ``daily_pipeline``: Delta Lake sequential vs parallel, DuckDB sequential beside it.

Real Dagster runs end to end: for each configuration a fresh instance
(``DAGSTER_HOME``) whose ``dagster.yaml`` is the project's, sized by
``python -m metro_assets.storage.parallel`` (run queue and pool limit =
``METRO_PARALLEL_DAYS``); ``dagster-daemon run`` dequeues and launches the
runs (QueuedRunCoordinator, one new process per run); ``dagster job
backfill`` submits one run per day. The wall time is from the first run's
start to the last run's end.

The data is prepared once (DuckDB: the simulated history through the
``simulate`` job, the ranker through ``retrain`` for the Monday before the
window) and copied into Delta tables (``metro_assets.storage.copy``); each
configuration starts from its own copy. Finally the recommendations of every
configuration are compared: parallel must equal sequential.

Usage::

    .venv/bin/python benchmarks/concurrent_backfill.py --scale demo --workers 2 \\
        --workdir /tmp/bench --out benchmarks/results/concurrent_backfill_demo.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
JOB = "daily_pipeline"


def environment(workdir: Path, scale: str, seed: int, storage: str, parallel: int, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRO_")}
    env.update(METRO_SCALE=scale, METRO_SEED=str(seed), METRO_DEEP="false",
               METRO_WAREHOUSE=str(workdir / "warehouse.duckdb"), METRO_SERVING=str(home / "serving.parquet"),
               METRO_STORAGE=storage, METRO_PARALLEL_DAYS=str(parallel), DAGSTER_HOME=str(home),
               PYTHONPATH=f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep))
    return env


def run(cmd: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=ROOT, check=True, text=True, capture_output=True, **kwargs)


def prepare(workdir: Path, scale: str, seed: int) -> tuple[date, date]:
    """The history and a trained ranker in ``template.duckdb`` and ``template_delta/``; returns the window."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "prepare_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = environment(workdir, scale, seed, "duckdb", 1, home)
    env["METRO_WAREHOUSE"] = str(workdir / "template.duckdb")
    probe = run([str(BIN / "python"), "-c", "from metro_assets.settings import load_settings as l; s = l(); "
                 "print(s.start_date, s.history_end)"], env).stdout.split()
    start, history_end = date.fromisoformat(probe[0]), date.fromisoformat(probe[1])
    monday = history_end - timedelta(days=history_end.weekday() + 7)  # the Monday of the week before the last
    first = monday + timedelta(days=1)
    if not (workdir / "template_delta").exists():
        started = time.perf_counter()
        run([str(BIN / "dagster"), "job", "execute", "-m", "metro_assets.definitions", "-j", "simulate",
             "--tags", json.dumps({"dagster/asset_partition_range_start": start.isoformat(),
                                   "dagster/asset_partition_range_end": (history_end - timedelta(1)).isoformat()})],
            env)
        run([str(BIN / "dagster"), "job", "execute", "-m", "metro_assets.definitions", "-j", "retrain",
             "--tags", json.dumps({"dagster/partition": monday.isoformat()})], env)
        print(f"prepared {scale} history and ranker for {monday} in {time.perf_counter() - started:.0f} s")
        delta_env = dict(env, METRO_STORAGE=f"delta:{workdir / 'template_delta.tmp'}")
        shutil.rmtree(workdir / "template_delta.tmp", ignore_errors=True)
        started = time.perf_counter()
        run([str(BIN / "python"), "-m", "metro_assets.storage.copy", str(workdir / "template.duckdb")], delta_env)
        os.replace(workdir / "template_delta.tmp", workdir / "template_delta")
        print(f"copied into Delta tables in {time.perf_counter() - started:.0f} s")
    return first, first + timedelta(days=6)


def backfill(workdir: Path, scale: str, seed: int, backend: str, workers: int, first: date, last: date) -> dict:
    """One configuration: a fresh instance and store, the daemon, the backfill; per-run times."""
    name = f"{backend}_{workers}"
    home = workdir / f"home_{name}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    if backend == "delta":
        store = workdir / f"delta_{name}"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(workdir / "template_delta", store)
        storage = f"delta:{store}"
    else:
        shutil.copy(workdir / "template.duckdb", workdir / "warehouse.duckdb")
        storage = "duckdb"
    env = environment(workdir, scale, seed, storage, workers, home)
    (home / "dagster.yaml").write_text(run([str(BIN / "python"), "-m", "metro_assets.storage.parallel"], env).stdout)
    # create the instance's SQLite storage before two processes (daemon, CLI) race to create it
    run([str(BIN / "python"), "-c", "from dagster import DagsterInstance; i = DagsterInstance.get(); "
         "i.get_runs(limit=1); i.event_log_storage.get_concurrency_keys()"], env)
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env=env, cwd=ROOT,
                              stdout=open(home / "daemon.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        submitted = time.perf_counter()
        run([str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", JOB, "--from",
             first.isoformat(), "--to", last.isoformat(), "--noprompt"], env)
        runs = wait_for_runs(env, expected=(last - first).days + 1)
        waited = time.perf_counter() - submitted
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    load = os.getloadavg()[1]  # 5-minute load average: the machine is shared, so say how busy it was
    failed = [r for r in runs if r["status"] != "SUCCESS"]
    if failed:
        raise SystemExit(f"{name}: runs failed: {failed} (see {home})")
    span = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    return {"config": name, "backend": backend, "workers": workers, "runs": len(runs),
            "wall_seconds": round(span, 1), "submit_to_done_seconds": round(waited, 1),
            "run_seconds_sum": round(sum(r["end"] - r["start"] for r in runs), 1),
            "run_seconds": {r["partition"]: round(r["end"] - r["start"], 1) for r in sorted(
                runs, key=lambda r: r["partition"])}, "storage": storage, "load_average_5min": round(load, 1)}


def wait_for_runs(env: dict, expected: int, timeout: float = 3600) -> list[dict]:
    """Poll the instance until ``expected`` runs have finished; their partition, status, start and end."""
    code = ("import json; from dagster import DagsterInstance; i = DagsterInstance.get(); "
            "rs = i.get_run_records(); print(json.dumps([dict(partition=r.dagster_run.tags.get('dagster/partition'),"
            " status=r.dagster_run.status.value, start=r.start_time, end=r.end_time) for r in rs]))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = json.loads(run([str(BIN / "python"), "-c", code], env).stdout)
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        if len(runs) >= expected and len(done) == len(runs):
            return runs
        time.sleep(5)
    raise SystemExit(f"backfill did not finish in {timeout:.0f} s")


def recommendations(workdir: Path, scale: str, seed: int, result: dict, first: date, last: date) -> list:
    env = environment(workdir, scale, seed, result["storage"], 1, workdir)
    code = ("import sys, json; from metro_assets.settings import load_settings; "
            "from metro_assets.storage import open_store\n"
            "with open_store(load_settings(), read_only=True) as con:\n"
            f"    rows = con.sql(\"select run_date::varchar, customer_id, offer_id, rank, round(score, 9) "
            f"from recommendations where run_date between '{first}' and '{last}' order by all\").fetchall()\n"
            "print(json.dumps(rows))")
    return json.loads(run([str(BIN / "python"), "-c", code], env).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--configs", default="duckdb_1,delta_1,delta_{workers}")
    args = parser.parse_args()
    first, last = prepare(args.workdir, args.scale, args.seed)
    print(f"backfill of {JOB} over {first}..{last}")
    results, lists = [], {}
    for config in args.configs.format(workers=args.workers).split(","):
        backend, workers = config.split("_")
        result = backfill(args.workdir, args.scale, args.seed, backend, int(workers), first, last)
        lists[config] = recommendations(args.workdir, args.scale, args.seed, result, first, last)
        results.append(result)
        print(f"{config}: {result['wall_seconds']} s wall ({result['run_seconds_sum']} s of runs), "
              f"{len(lists[config]):,} recommendations", flush=True)
    reference = next(iter(lists.values()))
    by_name = {r["config"]: r for r in results}
    sequential, parallel = by_name.get("delta_1"), by_name.get(f"delta_{args.workers}")
    summary = {
        "job": JOB, "scale": args.scale, "seed": args.seed, "days": f"{first}..{last}", "cores": os.cpu_count(),
        "results": results,
        "same_recommendations": all(rows == reference for rows in lists.values()),
        "recommendations": len(reference),
        "delta_speedup": round(sequential["wall_seconds"] / parallel["wall_seconds"], 2)
        if sequential and parallel and parallel is not sequential else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
