"""Embedding retrieval and the embedding-affinity feature, measured (docs/RETRIEVAL.md).

On a copy of a simulated warehouse (default scale, an evaluation seed: its
history already simulated, e.g. by ``make demo`` or ``quality.py``), for one
run date D (default: history_end - 21, the headline date of docs/EVALUATION.md)
and each configuration of the two switches (``METRO_CANDIDATES_EMBEDDING``,
``METRO_EMBEDDING_FEATURE``), in its own process and its own copy: the
``retrain`` job for the Monday on or before D (product_embeddings, ranker,
that day's pipeline), ``daily_pipeline`` for D and ``evaluate`` for D, as real
Dagster runs. Reported: the jobs' times and the process's peak memory, the
item2vec training time, the embedding search time, D's ``retrieval_summary``
(pool recall with every strategy and with each left out, at equal pool size)
and D's oracle share per policy.

Usage::

    .venv/bin/python benchmarks/retrieval.py --warehouse data/warehouse.duckdb          # 4 configurations
    .venv/bin/python benchmarks/retrieval.py --warehouse W --configs off,both --quota 40

Never writes to ``--warehouse``: each configuration works on its own copy in
``--workdir`` (deleted afterwards unless ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
#: name -> (embedding strategy on, embedding_affinity feature on)
CONFIGS = {"off": (False, False), "strategy": (True, False), "feature": (False, True), "both": (True, True)}


def _metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def child(run_date: date, out: Path) -> None:
    """One configuration (from the environment): retrain, daily_pipeline, evaluate; figures to ``out``."""
    import duckdb
    from dagster import DagsterInstance

    from metro_assets.definitions import build_defs
    from metro_assets.settings import load_settings

    settings = load_settings()
    defs = build_defs(settings)
    instance = DagsterInstance.ephemeral()
    monday = run_date - timedelta(days=run_date.weekday())
    figures: dict = {"run_date": run_date.isoformat(), "retrain_day": monday.isoformat(), "seconds": {}}
    for job, day in (("retrain", monday), ("daily_pipeline", run_date), ("evaluate", run_date)):
        t = time.perf_counter()
        result = defs.get_job_def(job).execute_in_process(partition_key=day.isoformat(), instance=instance,
                                                          run_config=QUIET)
        assert result.success, f"{job} {day} failed"
        figures["seconds"][job] = round(time.perf_counter() - t, 1)
        if job == "retrain":
            emb = _metadata(result, "product_embeddings")
            figures["item2vec"] = {k: emb.get(k) for k in ("words", "baskets", "sequences", "products",
                                                            "seconds_reading", "seconds_training", "loss_per_word")}
            figures["ranker"] = {k: _metadata(result, "ranker_model").get(k)
                                 for k in ("selection", "embedding_affinity", "logistic_regression_auc",
                                           "lightgbm_auc")}
        if job == "daily_pipeline":
            pool = _metadata(result, "candidate_pool")
            figures["pool"] = {k: pool.get(k) for k in ("pairs", "mean_candidates", "embedding_search",
                                                         "embedding_seconds_customer_vectors",
                                                         "embedding_seconds_search", "strategy_shares")}
    figures["peak_memory_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        figures["retrieval_summary"] = con.sql(
            "SELECT strategy_set, pairs, redemptions, redemption_recall, purchases, purchase_recall "
            "FROM retrieval_summary WHERE day = $d ORDER BY strategy_set", params={"d": run_date}).pl().to_dicts()
        figures["oracle_share"] = dict(con.sql(
            "SELECT policy, value FROM offline_evaluation WHERE run_date = $d AND metric = 'oracle_share' "
            "ORDER BY policy", params={"d": run_date}).fetchall())
        figures["model_minus"] = {p: (v, lo, hi) for p, v, lo, hi in con.sql(
            "SELECT policy, value, ci_low, ci_high FROM offline_evaluation WHERE run_date = $d "
            "AND metric = 'oracle_share' AND policy LIKE 'model_minus_%'", params={"d": run_date}).fetchall()}
    finally:
        con.close()
    out.write_text(json.dumps(figures, indent=1, default=str))


def run_config(name: str, args, run_date: date) -> dict:
    """Copy the warehouse and run :func:`child` for one configuration in its own process."""
    strategy, feature = CONFIGS[name]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    copy = work / f"{name}.duckdb"
    shutil.copy(args.warehouse, copy)
    env = {**os.environ, "METRO_SCALE": args.scale, "METRO_SEED": str(args.seed), "METRO_WAREHOUSE": str(copy),
           "METRO_SERVING": str(work / f"{name}.parquet"),
           "METRO_CANDIDATES_EMBEDDING": str(args.quota if strategy else 0),
           "METRO_EMBEDDING_FEATURE": "true" if feature else "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = work / f"{name}.json"
    try:
        subprocess.run([sys.executable, __file__, "--child", run_date.isoformat(), "--child-out", str(out)],
                       env=env, check=True)
        return json.loads(out.read_text())
    finally:
        if not args.keep:
            copy.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", help="a simulated warehouse to copy (never written)")
    parser.add_argument("--scale", default="default")
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--date", help="run date D (default: history_end - 21)")
    parser.add_argument("--configs", default="off,both,strategy,feature")
    parser.add_argument("--quota", type=int, default=40, help="METRO_CANDIDATES_EMBEDDING when the strategy is on")
    parser.add_argument("--workdir", default="/tmp/metro-retrieval-bench")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--child-out")
    args = parser.parse_args()
    if args.child:
        child(date.fromisoformat(args.child), Path(args.child_out))
        return
    if args.seed in (11, 23, 42):
        raise SystemExit("retrieval.py: seeds 11, 23 and 42 are tuning seeds (docs/EVALUATION.md); report others")
    os.environ.update({"METRO_SCALE": args.scale, "METRO_SEED": str(args.seed)})
    from metro_assets.settings import load_settings

    run_date = date.fromisoformat(args.date) if args.date else load_settings().history_end - timedelta(days=21)
    results = {}
    for name in args.configs.split(","):
        t = time.perf_counter()
        results[name] = run_config(name, args, run_date)
        print(f"== {name} ({time.perf_counter() - t:.0f} s)\n{json.dumps(results[name], indent=1, default=str)}",
              flush=True)
    Path(args.workdir, "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
