"""Tune the serving-kind selection rule on the TUNING seeds and dates only (docs/EVALUATION.md).

For each tuning seed (11, 23, 42) a fresh demo warehouse: the quality protocol's steps
(:func:`quality.run_days`) for the tuning run dates ``history_end - 14`` and ``- 7``. Then, per
retrain day, the validation week the selection rule reads is rebuilt (the same
:func:`training_set` as the ``ranker_model`` asset) and every stored kind scores it; with each
kind's oracle share on the run date (``offline_evaluation``, the measure the rule should track),
that gives, per candidate rule, the kind it would serve and what that kind reached.

Usage::

    .venv/bin/python benchmarks/selection_tuning.py            # 3 tuning seeds x 2 tuning dates (demo)
    .venv/bin/python benchmarks/selection_tuning.py --analyse DIR   # re-analyse a kept run

Writes the per-kind table to stdout and, with the validation scores, to ``DIR`` (a temp dir, kept).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TUNING_SEEDS = (11, 23, 42)
TUNING_OFFSETS = (14, 7)  # history_end - 14 and - 7: the tuning dates


def child(out: Path) -> None:
    """One tuning seed (from the environment): the protocol's steps, then the validation scores per kind."""
    import numpy as np
    import polars as pl

    import quality
    from metro_assets.ranking import models
    from metro_assets.ranking.scoring import selected_model
    from metro_assets.ranking.training import WindowRule, as_matrix, training_set
    from metro_assets.settings import load_settings
    from metro_assets.warehouse import connect

    settings = load_settings()
    dates = sorted(settings.history_end - timedelta(days=o) for o in TUNING_OFFSETS)
    if settings.seed not in TUNING_SEEDS:
        raise SystemExit(f"selection_tuning.py: seed {settings.seed} is not a tuning seed")
    settings, _ = quality.run_days(dates)
    r = settings.ranker
    rule = WindowRule(r.train_weeks, r.max_train_weeks, r.min_train_positives, r.min_validation_positives,
                      r.train_label)
    frames, shares = [], []
    with connect(settings.warehouse) as con:
        for d in dates:
            monday = d - timedelta(days=d.weekday())
            ts = training_set(con, monday, rule, r.negatives_per_positive, settings.seed, settings.embedding)
            v = ts.validation.select("customer_id", "offer_id", "day", "label")
            for kind in ("lightgbm", "logistic_regression", "wide_deep"):
                _, stored = selected_model(con, monday, kind=kind)
                p = models.load(stored).predict(as_matrix(ts.validation, stored.features))
                v = v.with_columns(pl.Series(kind, np.asarray(p, dtype=float)))
            log = con.sql("select customer_id, offer_id, day, min(propensity) as propensity, "
                          "min(position) as position, bool_or(is_exploration) as is_exploration "
                          "from impressions where day >= $a and day < $b group by all",
                          params={"a": ts.window.validation_start, "b": ts.window.end}).pl()
            v = v.join(log, on=["customer_id", "offer_id", "day"], how="left")
            frames.append(v.with_columns(seed=pl.lit(settings.seed), run_date=pl.lit(d)))
            shares.append(con.sql("select run_date, policy, metric, value, ci_low, ci_high from offline_evaluation "
                                  "where run_date = $d", params={"d": d}).pl().with_columns(seed=pl.lit(settings.seed)))
    pl.concat(frames).write_parquet(out / f"validation-{settings.seed}.parquet")
    pl.concat(shares).write_parquet(out / f"evaluation-{settings.seed}.parquet")


def analyse(workdir: Path) -> str:
    """Per (seed, run date, kind): global and within-customer validation metrics beside the oracle share."""
    import numpy as np
    import polars as pl

    from metro_assets.ranking import models
    from metro_assets.ranking.selection import per_customer

    kinds = ("lightgbm", "logistic_regression", "wide_deep")
    val = pl.concat([pl.read_parquet(p) for p in sorted(workdir.glob("validation-*.parquet"))])
    ev = pl.concat([pl.read_parquet(p) for p in sorted(workdir.glob("evaluation-*.parquet"))])
    rows = []
    for (seed, run_date), v in val.group_by("seed", "run_date", maintain_order=True):
        y = v["label"].to_numpy().astype(int)
        expl = v.filter(pl.col("is_exploration").fill_null(False))
        for kind in kinds:
            p = v[kind].to_numpy()
            g = models.validation_metrics(y, p)
            per = per_customer(v, p)
            per_x = per_customer(expl, expl[kind].to_numpy())
            share = ev.filter((pl.col("seed") == seed) & (pl.col("run_date") == run_date)
                              & (pl.col("policy") == kind) & (pl.col("metric") == "oracle_share"))
            rows.append({"seed": seed, "run_date": run_date, "kind": kind, "rows": v.height, "positives": int(y.sum()),
                         "auc": g["auc"], "log_loss": g["log_loss"],
                         "grouped_auc": per["auc"].mean(), "ndcg_at_10": per["ndcg"].mean(),
                         "customers": per.height, "explore_grouped_auc": per_x["auc"].mean(),
                         "explore_customers": per_x.height,
                         "oracle_share": share["value"][0] if share.height else None})
    table = pl.DataFrame(rows)
    table.write_csv(workdir / "tuning.csv")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, TUNING_SEEDS)))
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo"])
    parser.add_argument("--analyse", type=Path, help="only analyse the files of a kept run")
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_out is not None:
        child(args.child_out)
        return
    import polars as pl

    workdir = args.analyse
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="metro-selection-"))
        for seed in (int(s) for s in args.seeds.split(",")):
            env = {**os.environ, "METRO_SCALE": args.scale, "METRO_SEED": str(seed),
                   "METRO_WAREHOUSE": str(workdir / f"seed-{seed}.duckdb"),
                   "METRO_SERVING": str(workdir / f"serving-{seed}.parquet"),
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            subprocess.run([sys.executable, __file__, "--child-out", str(workdir)], env=env, check=True)
            print(f"seed {seed} done", flush=True)
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=200):
        print(analyse(workdir))
    print(f"files in {workdir}")


if __name__ == "__main__":
    main()
