"""The cost curve (issue 19 part 3): what each stage costs per customer-day as the retailer grows.

At each scale (demo 10k, default 50k, large 250k customers), on a fresh
warehouse of that scale, in pipeline order, each stage in its own process
(through :func:`benchmarks.run._run_stage`, so its peak RSS and CPU time are
its own): the simulated history, one day's features and candidate pool, the
model of that day, its recommendations, drift, the offline evaluation and the
daily pipeline end to end. For each: wall time, CPU time (user + system: the
2-core machine is shared, so wall time moves with the other jobs on it), peak
RSS, rows, and cost per customer-day = seconds / (customers x days the stage
produces). ``seconds`` and ``cpu_s`` cover the work (the Dagster run), not the
process's start (imports, loading the definitions: ``process_cpu_s`` includes
them). The day is the Monday a week before the run date (the retrain day
``benchmarks/run.py`` uses), so its following week is in the warehouse.

Results are merged into ``--out`` by scale (a scale re-run replaces its own
entry), and ``--plot`` draws the curve from the whole file. Benchmarks are not tests.

Usage::

    .venv/bin/python benchmarks/cost_curve.py --scales large --workdir /tmp/scaling
    .venv/bin/python benchmarks/cost_curve.py --scales demo,default --workdir /tmp/scaling
    .venv/bin/python benchmarks/cost_curve.py --plot-only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import run  # noqa: E402  (the stage harness: child processes, peak RSS, CPU time)

#: Stage name -> (what it is, the assets it materializes (None: a job or the simulation), rows to report).
STAGES = {
    "simulation": ("simulation: the whole history (raw assets + checks)", None, None),
    "features": ("features + candidate pool, one day (4 tables + checks)",
                 ["customer_features", "offer_features", "candidate_pool", "interaction_features"], "candidate_pool"),
    "model": ("model: ranker_model (training set + the model kinds) and product_embeddings, one retrain day",
              ["product_embeddings", "ranker_model"], "ranker_model"),
    "recommendations": ("recommendations: the pool scored, top 10 per customer, one day", ["recommendations"],
                        "recommendations"),
    "drift": ("drift_report: PSI of features and scores vs the training baseline, one day", ["drift_report"],
              "drift_report"),
    "evaluate": ("evaluate job: offline_evaluation + evaluation_summary, one day", None, "offline_evaluation"),
    "daily_pipeline": ("daily_pipeline job end to end, one day (features, pool, recommendations, snapshot, drift)",
                       None, None),
}
OUT = ROOT / "benchmarks" / "results" / "cost_curve.json"
PLOT = ROOT / "docs" / "images" / "cost_curve.png"


def _day():
    """The Monday a week before the run date: a retrain day whose next week is simulated."""
    from datetime import timedelta

    from metro_assets.settings import load_settings

    day = load_settings().history_end - timedelta(days=7)
    return day - timedelta(days=day.weekday())


def stage_simulation() -> list[dict]:
    return run.stage_simulation()


def _assets(name: str) -> list[dict]:
    return run._job_stage(name, _day(), STAGES[name][1])


def stage_features() -> list[dict]:
    return _assets("features")


def stage_model() -> list[dict]:
    return _assets("model")


def stage_recommendations() -> list[dict]:
    return _assets("recommendations")


def stage_drift() -> list[dict]:
    return _assets("drift")


def stage_evaluate() -> list[dict]:
    return run._job_stage("evaluate", _day())


def stage_daily_pipeline() -> list[dict]:
    return run._job_stage("daily_pipeline", _day())


def _summary(name: str, steps: list[dict], customers: int, days: int, load: tuple) -> dict:
    """One stage's figures: the whole run's time (the last row), its process's CPU and peak, the main rows."""
    whole = steps[-1]
    rows = whole.get("rows")
    key = STAGES[name][2]
    if key:
        rows = next((s.get("rows") for s in steps if s["stage"].endswith(f": {key}")), rows)
    customer_days = customers * days
    return {
        "stage": name, "what": STAGES[name][0], "seconds": whole["seconds"], "cpu_s": whole["work_cpu_s"],
        "process_cpu_s": whole["cpu_s"], "peak_mb": whole["peak_mb"], "rows": rows, "customer_days": customer_days,
        "us_per_customer_day": round(whole["seconds"] / customer_days * 1e6, 2),
        "cpu_us_per_customer_day": round(whole["work_cpu_s"] / customer_days * 1e6, 2),
        "load_before": load[0], "load_after": load[1],
        "steps": [{k: v for k, v in s.items() if k in ("stage", "seconds", "rows")} for s in steps],
    }


def run_scale(scale: str, stages: list[str], workdir: Path, seed: int, keep: bool, out_path: Path) -> dict:
    """Every stage at ``scale`` on a fresh warehouse under ``workdir`` (deleted afterwards unless ``keep``).

    ``out_path`` is rewritten after each stage, so a stage that fails (or is
    stopped) keeps the figures of the stages before it.
    """
    from metro_assets.settings import SCALES

    folder = workdir / scale
    if "simulation" in stages and folder.exists():
        shutil.rmtree(folder)  # a fresh warehouse: the simulation writes into an empty file
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "METRO_SCALE": scale, "METRO_SEED": str(seed),
           "METRO_WAREHOUSE": str(folder / "warehouse.duckdb"), "METRO_SERVING": str(folder / "serving.parquet")}
    size = SCALES[scale]
    out = {"scale": scale, "customers": size.customers, "products": size.products, "stores": size.stores,
           "history_days": size.history_days, "seed": seed, "stages": []}
    for name in stages:
        load_before = os.getloadavg()[0]
        steps = run._run_stage(name, env, script=__file__)
        load = (round(load_before, 2), round(os.getloadavg()[0], 2))
        days = size.history_days if name == "simulation" else 1
        row = _summary(name, steps, size.customers, days, load)
        out["stages"].append(row)
        _write(out_path, merge(out_path, dict(out, stages=list(out["stages"]))))
        print(f"{scale:<8} {name:<16} {row['seconds']:>8.1f} s wall {row['cpu_s']:>8.1f} s cpu "
              f"{row['peak_mb']:>7} MB peak {row['rows'] or '':>12} rows "
              f"{row['cpu_us_per_customer_day']:>9.1f} cpu us/customer-day (load {load[0]}-{load[1]})", flush=True)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def merge(path: Path, result: dict) -> dict:
    """``path``'s results with ``result``'s scale replaced (or added), stages merged by name."""
    data = json.loads(path.read_text()) if path.exists() else {"scales": {}}
    old = data["scales"].get(result["scale"], {"stages": []})
    names = {s["stage"] for s in result["stages"]}
    result["stages"] = [s for s in old["stages"] if s["stage"] not in names] + result["stages"]
    result["stages"].sort(key=lambda s: list(STAGES).index(s["stage"]))
    data["scales"][result["scale"]] = result
    data.update(cores=os.cpu_count(), measured=datetime.now(timezone.utc).isoformat(timespec="minutes"))
    order = ["tiny", "demo", "default", "large"]
    data["scales"] = dict(sorted(data["scales"].items(), key=lambda kv: order.index(kv[0])))
    return data


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def plot(data: dict, path: Path) -> None:
    """CPU cost per customer-day and peak memory of each stage against the number of customers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = list(data["scales"].values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name in STAGES:
        points = [(s["customers"], r) for s in scales for r in s["stages"] if r["stage"] == name]
        if not points:
            continue
        costs = [(c, r["cpu_us_per_customer_day"]) for c, r in points if r.get("cpu_us_per_customer_day")]
        line = left.plot(*zip(*costs), marker="o", label=name) if costs else None
        right.plot([c for c, _ in points], [r["peak_mb"] / 1024 for _, r in points], marker="o", label=name,
                   color=line[0].get_color() if line else None)
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xticks([s["customers"] for s in scales], [f"{s['scale']}\n{s['customers']:,}" for s in scales])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("CPU microseconds per customer-day")
    left.set_title("Cost per customer-day (flat = linear scaling)")
    right.axhline(16, color="red", linestyle="--", linewidth=1)
    right.text(right.get_xlim()[1], 16.3, "16 GiB target ", color="red", fontsize=8, ha="right")
    right.set_ylabel("peak RSS of the stage's process (GiB)")
    right.set_title("Peak memory")
    right.legend(fontsize=8, loc="center left")
    fig.suptitle("Metro Offers cost curve (one process per stage, 2 shared cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _num(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def table(data: dict) -> str:
    """The results as a markdown table (docs/SCALING.md): one row per stage and scale."""
    lines = ["| stage | scale | customers | wall s | CPU s | peak RSS GB | rows | CPU us per customer-day "
             "| x default | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    base = {r["stage"]: r for r in data["scales"].get("default", {}).get("stages", [])}
    for name in STAGES:
        for scale in data["scales"].values():
            row = next((r for r in scale["stages"] if r["stage"] == name), None)
            if row is None:
                continue
            cost = row.get("cpu_us_per_customer_day")
            ratio = (f"{cost / base[name]['cpu_us_per_customer_day']:.2f}"
                     if cost and name in base and base[name]["cpu_us_per_customer_day"] else "")
            lines.append(f"| {name} | {scale['scale']} | {scale['customers']:,} | {row['seconds']:,.1f} "
                         f"| {_num(row.get('cpu_s'))} | {row['peak_mb'] / 1024:.1f} | {_num(row['rows'], 0)} "
                         f"| {_num(cost)} | {ratio} | {row['load_before']:g}-{row['load_after']:g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="demo,default,large")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {list(STAGES)}")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/metro-cost-curve"),
                        help="warehouses go to <workdir>/<scale>/ (large: ~25 GB of disk)")
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--keep", action="store_true", help="keep the warehouses")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--table", action="store_true", help="print --out as a markdown table and stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = globals()[f"stage_{args.child}"]()  # the last row: the whole run, with its work_cpu_s
        Path(args.child_out).write_text(json.dumps(rows, default=str))
        return
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    if not args.plot_only:
        stages = args.stages.split(",")
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise SystemExit(f"--stages: unknown {unknown}; choose from {list(STAGES)}")
        for scale in args.scales.split(","):
            run_scale(scale, stages, args.workdir, args.seed, args.keep, args.out)
            print(f"wrote {args.out}", flush=True)
    plot(json.loads(args.out.read_text()), args.plot)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
