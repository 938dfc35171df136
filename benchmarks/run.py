"""Benchmark harness: time each pipeline stage at a given scale, with peak memory.

Each stage runs in its own process (so its peak RSS is its own) against one
benchmark warehouse, in pipeline order. Benchmarks are not tests.

Usage::

    .venv/bin/python benchmarks/run.py --scale default --out benchmarks/results/default.json
    .venv/bin/python benchmarks/run.py --scale tiny --stages simulation,simulation_cli

``simulation`` times the raw assets in-process on an ephemeral instance (the
work itself); ``simulation_cli`` times what a user waits for: ``dagster job
execute`` on a persistent instance from ``dagster.yaml``, events recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
STAGES = ["simulation", "simulation_cli", "features", "retrain", "daily_pipeline",
          "daily_pipeline_newest"]  # pipeline order


def stage_simulation() -> list[dict]:
    """The whole history into the warehouse: one real Dagster run of the raw assets."""
    from dagster import DagsterInstance, materialize
    from dagster_duckdb import DuckDBResource

    from metro_assets.settings import load_settings
    from metro_assets.raw.assets import build_raw_assets
    from metro_assets.simulation.world import RAW_TABLES
    from metro_assets.warehouse import connect

    settings = load_settings()
    last = settings.history_end.toordinal() - 1
    from datetime import date

    tags = {"dagster/asset_partition_range_start": settings.start_date.isoformat(),
            "dagster/asset_partition_range_end": date.fromordinal(last).isoformat()}
    started, cpu = time.perf_counter(), _cpu()
    result = materialize([build_raw_assets(settings)], tags=tags, instance=DagsterInstance.ephemeral(),
                         resources={"warehouse": DuckDBResource(database=str(settings.warehouse))},
                         run_config=QUIET)
    seconds, cpu_s = time.perf_counter() - started, _cpu() - cpu
    assert result.success
    with connect(settings.warehouse, read_only=True) as con:
        rows = sum(con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in RAW_TABLES)
    return [{"stage": "simulation (whole history, raw assets + checks; ephemeral instance)", "seconds": seconds,
             "rows": rows, "work_cpu_s": round(cpu_s, 2)}]


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far, all its threads (DuckDB's, BLAS's)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _history_tags() -> dict:
    from datetime import timedelta

    from metro_assets.settings import load_settings

    settings = load_settings()
    return {"dagster/asset_partition_range_start": settings.start_date.isoformat(),
            "dagster/asset_partition_range_end": (settings.history_end - timedelta(days=1)).isoformat()}


def stage_simulation_cli() -> list[dict]:
    """The same history the way a user runs it: ``dagster job execute -j simulate`` as a process, on a
    fresh persistent instance configured from the project's ``dagster.yaml`` (what ``make ui`` uses).

    The wall time includes loading the code location and everything Dagster records
    in its SQLite storage; ``events`` counts the run's event log entries. Set
    ``METRO_BENCH_DAGSTER_YAML`` to time another instance configuration (e.g. stock storage).
    """
    from collections import Counter

    from dagster import DagsterInstance

    home = Path(tempfile.mkdtemp(prefix="metro-bench-home-"))
    (home / "dagster.yaml").write_text(Path(os.environ.get("METRO_BENCH_DAGSTER_YAML", ROOT / "dagster.yaml"))
                                       .read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).parent / "dagster"  # of this environment, not a fixed .venv
    command = [str(dagster), "job", "execute", "-m", "metro_assets.definitions", "-j", "simulate",
               "--tags", json.dumps(_history_tags())]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dagster job execute failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        kinds = Counter(e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.dagster_event)
    return [{"stage": "simulation via `dagster job execute` (project dagster.yaml)", "seconds": seconds,
             "rows": None, "events": sum(kinds.values()),
             "materializations": kinds["ASSET_MATERIALIZATION"],
             "planned": kinds["ASSET_MATERIALIZATION_PLANNED"]}]


def _run_date():
    from metro_assets.settings import load_settings

    return load_settings().history_end  # 2026-02-11 at the default scale


def stage_features() -> list[dict]:
    """Features and candidate pool of one day, two weeks before the run date, stage by stage."""
    from datetime import timedelta

    from stages_features import bench_features

    from metro_assets.settings import load_settings
    from metro_assets.warehouse import connect

    with connect(load_settings().warehouse) as con:
        return bench_features(con, _run_date() - timedelta(days=14))


def _job_stage(job: str, day, assets: list[str] | None = None) -> list[dict]:
    """Run a job for a day through Dagster and report each step and the whole run.

    ``assets``: only these assets (and their checks), through the implicit asset job (``job`` names the row).
    """
    from dagster import AssetKey, DagsterInstance

    from metro_assets.definitions import build_defs
    from metro_assets.settings import load_settings

    instance = DagsterInstance.ephemeral()
    defs = build_defs(load_settings())
    definition = defs.resolve_implicit_global_asset_job_def() if assets else defs.get_job_def(job)
    started, cpu = time.perf_counter(), _cpu()
    result = definition.execute_in_process(
        partition_key=day.isoformat(), instance=instance, run_config=QUIET,
        asset_selection=[AssetKey(a) for a in assets] if assets else None)
    seconds, cpu_s = time.perf_counter() - started, _cpu() - cpu
    assert result.success
    rows = []
    for stats in instance.get_run_step_stats(result.run_id):
        meta = {}
        for event in result.get_asset_materialization_events():
            if event.step_key == stats.step_key:
                meta = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()
                        if k in ("rows_written", "rows", "pairs", "pairs_scored", "recommendations", "train_rows")}
        rows.append({"stage": f"{job} {day}: {stats.step_key}", "seconds": stats.end_time - stats.start_time,
                     "rows": meta.get("pairs_scored") or meta.get("rows_written") or meta.get("dagster/row_count") or meta.get("rows")
                     or meta.get("pairs") or meta.get("train_rows")})
    rows.append({"stage": f"{job} {day}: whole run", "seconds": seconds, "rows": None,
                 "work_cpu_s": round(cpu_s, 2)})
    return rows


def stage_retrain() -> list[dict]:
    """The Monday a week before the run date: train both rankers, then that day's pipeline."""
    from datetime import timedelta

    day = _run_date() - timedelta(days=7)
    return _job_stage("retrain", day - timedelta(days=day.weekday()))


def stage_daily_pipeline() -> list[dict]:
    """A day whose next week is in the warehouse, end to end: features, candidates, scoring,
    snapshot and drift (offline evaluation is the ``evaluate`` job's, not timed here)."""
    from datetime import timedelta

    return _job_stage("daily_pipeline", _run_date() - timedelta(days=7))


def stage_daily_pipeline_newest() -> list[dict]:
    """The run date, end to end (its week is in the future, so evaluation records nothing)."""
    return _job_stage("daily_pipeline", _run_date())


def _run_stage(name: str, env: dict, script: str | Path = __file__) -> list[dict]:
    """Run one stage (``stage_<name>`` of ``script``) in a child process; attach its peak memory and CPU time.

    ``cpu_s`` is user + system time of the child and the processes it waited for
    (``wait4``'s usage): on a shared machine it moves less than the wall time.
    """
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        proc = subprocess.Popen([sys.executable, str(script), "--child", name, "--child-out", out.name], env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"benchmark stage {name} failed")
        rows = json.loads(Path(out.name).read_text())
    for row in rows:
        row["peak_mb"] = round(usage.ru_maxrss / 1024)  # the stage process's peak RSS
        row["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)  # the whole stage process's, on every row
        row["rows_per_s"] = round(row["rows"] / row["seconds"]) if row.get("rows") and row["seconds"] else None
        row["seconds"] = round(row["seconds"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default", choices=["tiny", "demo", "default", "large"])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {STAGES}")
    parser.add_argument("--warehouse", help="benchmark warehouse (default: a temporary file)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = globals()[f"stage_{args.child}"]()
        Path(args.child_out).write_text(json.dumps(rows, default=str))
        return
    workdir = Path(tempfile.mkdtemp(prefix="metro-bench-"))
    env = {**os.environ, "METRO_SCALE": args.scale,
           "METRO_WAREHOUSE": args.warehouse or str(workdir / "warehouse.duckdb"),
           "METRO_SERVING": str(workdir / "serving.parquet")}
    results = []
    for name in args.stages.split(","):
        rows = _run_stage(name, env)
        results.extend(rows)
        for row in rows:
            print(f"{row['stage']:<55} {row['seconds']:>8.2f} s {row.get('rows') or '':>12} rows "
                  f"{row.get('rows_per_s') or '':>10} rows/s {row['peak_mb']:>7} MB peak"
                  + (f" {row['events']:>6} events" if row.get("events") else ""), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"scale": args.scale, "cores": os.cpu_count(), "stages": results}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
