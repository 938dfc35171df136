"""Benchmark the import: build a simulated warehouse, export it, import it through the raw assets.

Each step runs in its own process (its peak RSS is its own). The import is one
real Dagster run of the raw assets over every partition (a single-run
backfill), as ``METRO_SOURCE=parquet:<dir>`` does it. Benchmarks are not tests.

Usage::

    .venv/bin/python benchmarks/import_round_trip.py --scale default [--format csv] [--workdir /tmp/x]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def step_build(work: Path, scale: str, fmt: str) -> dict:
    from metro_assets.settings import SCALES
    from metro_assets.simulation.world import RAW_TABLES, TRUTH_TABLES, simulate
    from metro_assets.warehouse import connect, replace_partitions

    start = date(2025, 8, 15)
    end = start + timedelta(days=SCALES[scale].history_days)
    began = time.perf_counter()
    tables = simulate(SCALES[scale], 42, start, end)
    with connect(work / "simulated.duckdb") as con:
        replace_partitions(con, {t: tables[t] for t in (*RAW_TABLES, *TRUTH_TABLES)}, start, end)
    return {"seconds": time.perf_counter() - began, "rows": sum(tables[t].height for t in RAW_TABLES)}


def step_export(work: Path, scale: str, fmt: str) -> dict:
    from metro_assets.export import export_raw_tables

    began = time.perf_counter()
    written = export_raw_tables(work / "simulated.duckdb", work / "export", fmt)
    size = sum(p.stat().st_size for p in (work / "export").iterdir())
    return {"seconds": time.perf_counter() - began, "rows": sum(written.values()), "mb": round(size / 2**20, 1)}


def step_import(work: Path, scale: str, fmt: str) -> dict:
    from dagster import DagsterInstance, materialize
    from dagster_duckdb import DuckDBResource

    from metro_assets.settings import load_settings
    from metro_assets.raw.assets import build_raw_assets

    began = time.perf_counter()
    settings = load_settings()  # reads the import's first and last event day
    span_seconds = time.perf_counter() - began
    assets = build_raw_assets(settings)
    keys = assets.partitions_def.get_partition_keys()
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    began = time.perf_counter()
    result = materialize([assets], tags=tags, instance=DagsterInstance.ephemeral(), run_config=QUIET,
                         resources={"warehouse": DuckDBResource(database=str(settings.warehouse))})
    seconds = time.perf_counter() - began
    assert result.success
    # a range run records one materialization per partition, each with the run's metadata
    rows = sum({m.asset_key.path[-1]: m.metadata["rows_written"].value
                for m in result.asset_materializations_for_node("raw_tables")}.values())
    return {"seconds": seconds, "rows": rows, "partitions": len(keys), "settings_seconds": span_seconds,
            "first": keys[0], "last": keys[-1]}


def step_compare(work: Path, scale: str, fmt: str) -> dict:
    import duckdb

    from metro_assets.importing.contract import TABLES

    con = duckdb.connect()
    con.execute(f"attach '{work / 'simulated.duckdb'}' as a (read_only)")
    con.execute(f"attach '{work / 'imported.duckdb'}' as b (read_only)")
    began = time.perf_counter()
    differing = {}
    for t in TABLES:
        n = con.sql(f"select (select count(*) from (select * from a.{t} except all select * from b.{t})) + "
                    f"(select count(*) from (select * from b.{t} except all select * from a.{t}))").fetchall()[0][0]
        differing[t] = n
    return {"seconds": time.perf_counter() - began, "differing_rows": differing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default", choices=["tiny", "demo", "default"])
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--steps", default="build,export,import,compare")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="metro-import-bench-"))
    if args.child:
        row = globals()[f"step_{args.child}"](work, args.scale, args.format)
        row["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # this step's process
        print(json.dumps(row, default=str))
        return
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "METRO_SCALE": args.scale, "METRO_WAREHOUSE": str(work / "imported.duckdb"),
           "METRO_SERVING": str(work / "serving.parquet"), "METRO_SOURCE": f"parquet:{work / 'export'}"}
    env.pop("METRO_START_DATE", None)
    for name in args.steps.split(","):
        if name == "import":
            (work / "imported.duckdb").unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, __file__, "--child", name, "--workdir", str(work),
                                 "--scale", args.scale, "--format", args.format],
                                env=env, stdout=subprocess.PIPE, text=True)
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"step {name} failed")
        row = json.loads(out.strip().splitlines()[-1])
        print(f"{name:<8} {json.dumps(row)}", flush=True)


if __name__ == "__main__":
    main()
