"""Issue 18's quality bar: every policy over 8 weeks of the simulated world, at demo scale, on evaluation seeds.

For each (seed, scenario) it runs :func:`metro_assets.bandit.run.run_scenario`
from the demo history's end (the run date) and writes the per-day table to
``--out`` (Parquet, one file per run; a finished run is not repeated), then
prints, per run and as mean [min, max] over seeds:

* Thompson sampling's mean daily regret in the first and the last 4 weeks (it learns: last < first);
* redemptions of the cold-start offers in their first week, Thompson vs batch;
* total expected (and realized) redemptions, each policy over the batch ranker's (bar: Thompson >= 0.90);
* seconds per run (CPU time of the process beside wall time: the machine is shared).

Usage::

    .venv/bin/python benchmarks/bandit.py                                   # seeds 101 202 303, cold_start
    .venv/bin/python benchmarks/bandit.py --seeds 101 --scenarios steady black_friday
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metro_assets.bandit.plots import regret_png  # noqa: E402
from metro_assets.bandit.policies import POLICIES  # noqa: E402
from metro_assets.bandit.run import run_scenario, summarise  # noqa: E402
from metro_assets.settings import SCALES  # noqa: E402

TUNING_SEEDS = {11, 23, 42}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 202, 303])
    ap.add_argument("--scenarios", nargs="+", default=["cold_start"])
    ap.add_argument("--scale", default="demo")
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("data/bandit"))
    ap.add_argument("--tuning", action="store_true", help="allow the tuning seeds (figures not to be published)")
    ap.add_argument("--plots", type=Path, help="write each run's cumulative-regret PNG to this folder")
    ap.add_argument("--policies", nargs="+", default=list(POLICIES),
                    help="the bar needs thompson and batch only (regret is measured in each policy's own run)")
    args = ap.parse_args()
    if TUNING_SEEDS & set(args.seeds) and not args.tuning:
        sys.exit(f"seeds {sorted(TUNING_SEEDS & set(args.seeds))} are tuning seeds (docs/EVALUATION.md): pick others")
    scale = SCALES[args.scale]
    history_start = date(2025, 8, 15)
    start = history_start + timedelta(days=scale.history_days)
    days = 7 * args.weeks
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for seed in args.seeds:
        for scenario in args.scenarios:
            tag = "" if set(args.policies) == set(POLICIES) else "_" + "-".join(args.policies)
            path = args.out / f"{args.scale}_{scenario}_{seed}{tag}.parquet"
            meta = path.with_suffix(".json")
            if path.exists() and meta.exists():
                frame, info = pl.read_parquet(path), json.loads(meta.read_text())
            else:
                wall, cpu = time.perf_counter(), time.process_time()
                frame, info = run_scenario(scale, seed, history_start, start, days, scenario, tuple(args.policies),
                                           progress=lambda line: print(f"seed {seed}: {line}", flush=True))
                info = {**{k: (str(v) if isinstance(v, date) else v) for k, v in info.items()},
                        "wall_seconds": round(time.perf_counter() - wall, 1),
                        "cpu_seconds": round(time.process_time() - cpu, 1)}
                frame.write_parquet(path)
                meta.write_text(json.dumps(info, indent=1))
            launch = date.fromisoformat(info["new_offers_launch"]) if info.get("new_offers_launch") else None
            if args.plots:
                args.plots.mkdir(parents=True, exist_ok=True)
                png = regret_png(frame, f"{scenario}: {args.scale} scale, seed {seed}, "
                                        f"{start}..{start + timedelta(days=days - 1)}")
                (args.plots / f"bandit_{scenario}_{args.scale}_{seed}{tag}.png").write_bytes(png)
            s = summarise(frame, start, days, launch).with_columns(seed=pl.lit(seed), scenario=pl.lit(scenario))
            print(f"\nseed {seed}, {scenario}: wall {info['wall_seconds']} s, CPU {info['cpu_seconds']} s, "
                  f"per policy {info['seconds']}")
            with pl.Config(tbl_rows=20, tbl_cols=20, tbl_width_chars=250, float_precision=3):
                print(s)
            summaries.append(s)
    if not summaries:
        return
    allruns = pl.concat(summaries)
    figures = [c for c in allruns.columns if c not in ("policy", "seed", "scenario")]
    agg = allruns.group_by("scenario", "policy").agg(
        *[pl.format("{} [{}, {}]", pl.col(c).mean().round(3), pl.col(c).min().round(3), pl.col(c).max().round(3))
          .alias(c) for c in figures])
    print("\nmean [min, max] over seeds")
    with pl.Config(tbl_rows=40, tbl_cols=20, tbl_width_chars=400, fmt_str_lengths=40):
        print(agg.sort("scenario", "policy"))
    allruns.write_parquet(args.out / f"{args.scale}_summary.parquet")


if __name__ == "__main__":
    main()
