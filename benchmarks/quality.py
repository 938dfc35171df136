"""The quality protocol: evaluation seeds x run dates the features were never tuned on (docs/EVALUATION.md).

For each evaluation seed, a fresh temporary warehouse: simulate the whole
history (one Dagster run of the raw assets), then for each run date D the
``retrain`` job for the Monday on or before D, the ``daily_pipeline`` job for
D and the ``evaluate`` job for D (D's ``offline_evaluation``: its label week
is in the history). Each seed runs in its own process (settings are read from the
environment). The report gives, per policy and metric, the mean, min and max
over the (seed, date) evaluations, and for the model's paired differences how
many evaluations had the whole 95% interval above zero; then the issue's
quality bar, evaluation by evaluation.

Usage::

    .venv/bin/python benchmarks/quality.py                      # demo scale, 3 seeds x 4 dates
    .venv/bin/python benchmarks/quality.py --seeds 101 --dates 2  # a quick check
    .venv/bin/python benchmarks/quality.py --headline           # default scale, 1 seed x 1 date

Writes the Markdown report to stdout and to benchmarks/results/ (git-ignored),
with the raw rows beside it as CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
#: seeds and run dates features and settings were tuned on: never reported (docs/EVALUATION.md)
TUNING_SEEDS = (11, 23, 42)
EVALUATION_SEEDS = (101, 202, 303, 404, 505)
FIRST_OFFSET = 21   # the newest reported run date: history_end - 7 and - 14 are tuning dates
SPACING = 7         # days between reported run dates (a week: each has its own Monday retrain)
KEY_METRICS = ("oracle_share", "oracle_share_within_caps", "expected_redemptions_at_10",
               "expected_incremental_redemptions_at_10", "expected_incremental_margin_at_10",
               "snips_redemptions_at_10", "ndcg_at_10")
SIMPLE_RULES = ("affinity_rule", "buy_again")


def run_dates(history_end: date, n: int) -> list[date]:
    """The ``n`` reported run dates, oldest first: history_end - 21, - 28, ... (all gradable, none tuned on)."""
    return sorted(history_end - timedelta(days=FIRST_OFFSET + SPACING * i) for i in range(n))


def run_days(dates: list[date]) -> tuple:
    """Simulate the seed of the environment, then retrain + daily_pipeline + evaluate per run date.

    Returns the settings and the seconds per step. Shared with ``benchmarks/selection_tuning.py``, which runs
    it on the tuning seeds and dates.
    """
    from dagster import DagsterInstance, materialize
    from dagster_duckdb import DuckDBResource

    from metro_assets.definitions import build_defs
    from metro_assets.settings import load_settings
    from metro_assets.raw.assets import build_raw_assets

    settings = load_settings()
    resources = {"warehouse": DuckDBResource(database=str(settings.warehouse))}
    instance = DagsterInstance.ephemeral()
    timings = {}
    started = time.perf_counter()
    last = settings.history_end - timedelta(days=1)
    tags = {"dagster/asset_partition_range_start": settings.start_date.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}
    result = materialize([build_raw_assets(settings)], tags=tags, instance=instance, resources=resources,
                         run_config=QUIET)
    assert result.success, "simulation failed"
    timings["simulate"] = time.perf_counter() - started
    defs = build_defs(settings)
    trained = set()
    for d in dates:
        monday = d - timedelta(days=d.weekday())
        if monday not in trained:
            t = time.perf_counter()
            assert defs.get_job_def("retrain").execute_in_process(
                partition_key=monday.isoformat(), instance=instance, run_config=QUIET).success, f"retrain {monday}"
            timings[f"retrain {monday}"] = time.perf_counter() - t
            trained.add(monday)
        for job in ("daily_pipeline", "evaluate"):  # evaluate: offline_evaluation of D (its week is loaded)
            t = time.perf_counter()
            assert defs.get_job_def(job).execute_in_process(
                partition_key=d.isoformat(), instance=instance, run_config=QUIET).success, f"{job} {d}"
            timings[f"{job} {d}"] = time.perf_counter() - t
    return settings, timings


def child(dates_n: int, out: Path) -> None:
    """One seed (from the environment): simulate, then retrain + daily_pipeline per run date; rows to ``out``."""
    import polars as pl

    from metro_assets.settings import load_settings
    from metro_assets.warehouse import connect

    dates = run_dates(load_settings().history_end, dates_n)
    settings, timings = run_days(dates)
    with connect(settings.warehouse, read_only=True) as con:
        rows = con.sql("select run_date, policy, metric, value, ci_low, ci_high from offline_evaluation "
                       "where run_date in (select unnest($dates::DATE[]))", params={"dates": dates}).pl()
        # evaluation_summary of the newest run date pools every run date before it (the evaluate job writes it)
        pooled = con.sql("select run_date, policy, metric, value, ci_low, ci_high from evaluation_summary "
                         "where run_date = $d", params={"d": max(dates)}).pl()
    rows = rows.with_columns(seed=pl.lit(settings.seed), scale=pl.lit(settings.scale.name))
    rows.write_csv(out)
    pooled.with_columns(seed=pl.lit(settings.seed)).write_csv(pooled_path(out))
    out.with_suffix(".json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}))


def pooled_path(out: Path) -> Path:
    """Where a seed's pooled rows (``evaluation_summary`` of its newest run date) go beside its rows."""
    return out.with_name(f"{out.stem}-pooled.csv")


def run_seed(scale: str, seed: int, dates_n: int, workdir: Path) -> tuple[Path, dict]:
    """Run :func:`child` for one seed in its own process and warehouse."""
    env = {**os.environ, "METRO_SCALE": scale, "METRO_SEED": str(seed),
           "METRO_WAREHOUSE": str(workdir / f"seed-{seed}.duckdb"),
           "METRO_SERVING": str(workdir / f"serving-{seed}.parquet"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = workdir / f"seed-{seed}.csv"
    subprocess.run([sys.executable, __file__, "--child", str(dates_n), "--child-out", str(out)], env=env, check=True)
    return out, json.loads(out.with_suffix(".json").read_text())


def report(rows, timings: dict, scale: str, pooled=None) -> str:
    """The Markdown report: spread per policy and metric, paired differences, the quality bar; with
    ``pooled`` (each seed's ``evaluation_summary`` over its run dates), SNIPS against the causal value pooled."""
    import polars as pl

    from metro_assets.monitoring.evaluation import BASELINES, POLICIES, paired_policy

    n_eval = rows.select("seed", "run_date").unique().height
    seeds = sorted(rows["seed"].unique().to_list())
    dates = sorted(rows["run_date"].unique().to_list())
    lines = [f"# Quality protocol: {scale} scale, seeds {', '.join(map(str, seeds))} x run dates "
             f"{', '.join(map(str, dates))} ({n_eval} evaluations)", "",
             "Values per evaluated customer; mean [min, max] over the evaluations. Tuning seeds "
             f"{', '.join(map(str, TUNING_SEEDS))} are never reported.", ""]
    spread = (rows.group_by("policy", "metric")
              .agg(mean=pl.col("value").mean(), min=pl.col("value").min(), max=pl.col("value").max(),
                   above=(pl.col("ci_low") > 0).sum(), n=pl.len()))
    cell = {(r["policy"], r["metric"]): r for r in spread.iter_rows(named=True)}
    metrics = [m for m in KEY_METRICS if any((p, m) in cell for p in POLICIES)]
    policies = [p for p in POLICIES if any((p, m) in cell for m in metrics)]
    lines += ["| policy | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for p in policies:
        cells = ["" if (p, m) not in cell else
                 f"{cell[(p, m)]['mean']:.4f} [{cell[(p, m)]['min']:.4f}, {cell[(p, m)]['max']:.4f}]" for m in metrics]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    paired = ["oracle_share", "oracle_share_within_caps", "expected_incremental_redemptions_at_10",
              "expected_incremental_margin_at_10"]
    lines += ["", "Paired differences, model minus baseline: mean [min, max]; evaluations whose 95% CI is above zero.",
              "", "| baseline | " + " | ".join(paired) + " |", "|---" * (len(paired) + 1) + "|"]
    for b in BASELINES:
        p = paired_policy(b)
        cells = ["" if (p, m) not in cell else
                 f"{cell[(p, m)]['mean']:+.4f} [{cell[(p, m)]['min']:+.4f}, {cell[(p, m)]['max']:+.4f}]; "
                 f"{cell[(p, m)]['above']}/{cell[(p, m)]['n']}" for m in paired]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += ["", "Quality bar (issue 14), per evaluation:", ""] + quality_bar(rows)
    if pooled is not None and pooled.height:
        lines += ["", "Pooled over each seed's run dates (`evaluation_summary`: more impressions behind SNIPS):", "",
                  "| seed | policy | SNIPS | expected redemptions | SNIPS / expected | ESS |",
                  "|---|---|---|---|---|---|"]
        cell = {(r["seed"], r["policy"], r["metric"]): r["value"] for r in pooled.iter_rows(named=True)}
        for seed in sorted(pooled["seed"].unique().to_list()):
            for p in ("model", "popularity"):
                snips = cell.get((seed, p, "snips_redemptions_at_10"))
                truth = cell.get((seed, p, "expected_redemptions_at_10"))
                if snips is None or truth is None:
                    continue
                lines.append(f"| {seed} | {p} | {snips:.3f} | {truth:.3f} | {snips / truth:.2f} "
                             f"| {cell.get((seed, p, 'ess'), float('nan')):.0f} |")
    lines += ["", "Seconds per step: " + "; ".join(f"{k} {v}" for k, v in timings.items())]
    return "\n".join(lines)


def quality_bar(rows) -> list[str]:
    """Each criterion of the issue's quality bar: how many evaluations meet it."""
    import polars as pl

    from metro_assets.monitoring.evaluation import BASELINES, paired_policy

    def get(policy, metric):
        return rows.filter((pl.col("policy") == policy) & (pl.col("metric") == metric)).select(
            "seed", "run_date", "value", "ci_low")

    evals = rows.select("seed", "run_date").unique()
    n = evals.height
    out = []
    # the bar as written (expected redemptions as if offers had no caps), then within the offers' caps
    for metric, within in (("oracle_share", ""), ("oracle_share_within_caps", " within caps")):
        share = get("model", metric)
        if share.height == 0:
            out.append(f"* {metric}: not recorded (evaluated by an older version)")
            continue
        out.append(f"* model oracle share{within} >= 0.85: {(share['value'] >= 0.85).sum()}/{n}")
        beats = evals
        for b in BASELINES:
            d = get(paired_policy(b), metric).select("seed", "run_date", ok=pl.col("ci_low") > 0)
            beats = beats.join(d.rename({"ok": b}), on=["seed", "run_date"], how="left")
        all_ok = beats.select(pl.all_horizontal([pl.col(b).fill_null(False) for b in BASELINES]).alias("ok"))["ok"]
        out.append(f"* model beats every baseline on expected redemptions{within}, paired 95% CI above zero: "
                   f"{all_ok.sum()}/{n}")
        rules = pl.concat([get(r, metric).with_columns(rule=pl.lit(r)) for r in SIMPLE_RULES])
        best_rule = rules.group_by("seed", "run_date").agg(best=pl.col("value").max())
        margin = share.join(best_rule, on=["seed", "run_date"]).with_columns(gap=pl.col("value") - pl.col("best"))
        out.append(f"* model oracle share{within} >= best simple rule + 0.05: {(margin['gap'] >= 0.05).sum()}/{n} "
                   f"(gap mean {margin['gap'].mean():+.4f})")
    for p in ("model", "popularity"):
        snips, truth = get(p, "snips_redemptions_at_10"), get(p, "expected_redemptions_at_10")
        if snips.height == 0:
            out.append(f"* SNIPS of {p} within 25% of the oracle value: unavailable (no logged propensities)")
            continue
        j = snips.join(truth, on=["seed", "run_date"], suffix="_truth")
        ok = ((j["value"] - j["value_truth"]).abs() <= 0.25 * j["value_truth"]).sum()
        out.append(f"* SNIPS of {p} within 25% of the oracle value: {ok}/{j.height}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo", "default"])
    parser.add_argument("--seeds", default="101,202,303", help="comma-separated evaluation seeds")
    parser.add_argument("--dates", type=int, default=4, help="run dates per seed (weekly, from history_end - 21)")
    parser.add_argument("--headline", action="store_true", help="default scale, the first seed, one run date")
    parser.add_argument("--keep", action="store_true", help="keep the temporary warehouses (to look into them)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.child_out)
        return
    import polars as pl

    seeds = [int(s) for s in args.seeds.split(",")]
    if args.headline:
        args.scale, seeds, args.dates = "default", seeds[:1], 1
    tuned = sorted(set(seeds) & set(TUNING_SEEDS))
    if tuned:
        raise SystemExit(f"quality.py: seeds {tuned} are tuning seeds (docs/EVALUATION.md): pick others")
    workdir = Path(tempfile.mkdtemp(prefix="metro-quality-"))
    frames, pooled, timings = [], [], {}
    started = time.perf_counter()
    for seed in seeds:  # one process per seed, one after the other: 2 cores are shared
        out, t = run_seed(args.scale, seed, args.dates, workdir)
        frames.append(pl.read_csv(out, try_parse_dates=True))
        pooled.append(pl.read_csv(pooled_path(out), try_parse_dates=True))
        timings.update({f"seed {seed} {k}": v for k, v in t.items()})
        print(f"seed {seed}: done ({time.perf_counter() - started:.0f} s so far)", flush=True)
    rows = pl.concat(frames)
    if args.keep:
        print(f"warehouses kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)  # the warehouses: the rows are kept below
    pooled = pl.concat(pooled, how="diagonal_relaxed")
    text = (report(rows, timings, args.scale, pooled)
            + f"\n\nTotal: {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores.")
    print(text)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stem = f"quality-{args.scale}-{'-'.join(map(str, seeds))}x{args.dates}"
    (results / f"{stem}.md").write_text(text + "\n")
    rows.write_csv(results / f"{stem}.csv")
    pooled.write_csv(results / f"{stem}-pooled.csv")
    print(f"wrote {results / stem}.md and .csv")


if __name__ == "__main__":
    main()
