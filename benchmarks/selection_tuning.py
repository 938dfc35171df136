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
    from metro_assets.monitoring.evaluation import MODEL_KINDS
    from metro_assets.ranking import models
    from metro_assets.ranking.scoring import selected_model
    from metro_assets.ranking.training import as_matrix, training_set, window_rule
    from metro_assets.settings import load_settings
    from metro_assets.warehouse import connect

    settings = load_settings()
    dates = sorted(settings.history_end - timedelta(days=o) for o in TUNING_OFFSETS)
    if settings.seed not in TUNING_SEEDS:
        raise SystemExit(f"selection_tuning.py: seed {settings.seed} is not a tuning seed")
    settings, _ = quality.run_days(dates)
    r = settings.ranker
    rule = window_rule(r)
    frames, shares = [], []
    with connect(settings.warehouse) as con:
        for d in dates:
            monday = d - timedelta(days=d.weekday())
            ts = training_set(con, monday, rule, r.negatives_per_positive, settings.seed, settings.embedding)
            v = ts.validation.select("customer_id", "offer_id", "day", "label")
            for kind in MODEL_KINDS:
                _, stored = selected_model(con, monday, kind=kind)
                p = models.load(stored).predict(as_matrix(ts.validation, stored.features))
                v = v.with_columns(pl.Series(kind, np.asarray(p, dtype=float)))
            log = con.sql("select customer_id, offer_id, day, min(propensity) as propensity, "
                          "min(position) as position, bool_or(is_exploration) as is_exploration "
                          "from impressions where day >= $a and day < $b group by all",
                          params={"a": ts.window.validation_start, "b": ts.window.end}).pl()
            v = v.join(log, on=["customer_id", "offer_id", "day"], how="left")
            v = v.join(_purchases(con, ts.window.validation_start, ts.window.end), on=["customer_id", "offer_id", "day"],
                       how="left")
            frames.append(v.with_columns(seed=pl.lit(settings.seed), run_date=pl.lit(d)))
            shares.append(con.sql("select run_date, policy, metric, value, ci_low, ci_high from offline_evaluation "
                                  "where run_date = $d", params={"d": d}).pl().with_columns(seed=pl.lit(settings.seed)))
    pl.concat(frames).write_parquet(out / f"validation-{settings.seed}.parquet")
    pl.concat(shares).write_parquet(out / f"evaluation-{settings.seed}.parquet")


def _purchases(con, start, end):
    """The validation rows' denser label: the customer bought the offer's product within 7 days (any price)."""
    import polars as pl

    from metro_assets.ranking.training import _labelled

    return _labelled(con, start, end, "product_purchase").select(
        "customer_id", "offer_id", "day", purchased=pl.col("label").cast(pl.Int64))


def add_purchases(workdir: Path) -> None:
    """Add the purchase label to the validation files of a kept run that lack it (their warehouses kept)."""
    import polars as pl

    from metro_assets.warehouse import connect

    for path in sorted(workdir.glob("validation-*.parquet")):
        v = pl.read_parquet(path)
        seed = path.stem.split("-")[1]
        if "purchased" in v.columns or not (workdir / f"seed-{seed}.duckdb").exists():
            continue
        with connect(workdir / f"seed-{seed}.duckdb", read_only=True) as con:
            lab = _purchases(con, v["day"].min(), v["day"].max() + timedelta(days=1))
        v.join(lab, on=["customer_id", "offer_id", "day"], how="left").write_parquet(path)


def analyse(workdir: Path):
    """Per (seed, run date, kind) the validation figures beside the oracle share; per candidate rule the kind it
    serves and what that kind reached (``tuning.csv``, ``rules.csv`` in ``workdir``). Returns both tables."""
    import numpy as np
    import polars as pl

    from metro_assets.monitoring.evaluation import MODEL_KINDS
    from metro_assets.ranking import models, selection
    from metro_assets.ranking.training import TrainedModel, best_model, validation_figures

    kinds = MODEL_KINDS
    add_purchases(workdir)
    val = pl.concat([pl.read_parquet(p) for p in sorted(workdir.glob("validation-*.parquet"))], how="diagonal")
    ev = pl.concat([pl.read_parquet(p) for p in sorted(workdir.glob("evaluation-*.parquet"))])
    rows, rules = [], []
    for (seed, run_date), v in val.group_by("seed", "run_date", maintain_order=True):
        share = {k: ev.filter((pl.col("seed") == seed) & (pl.col("run_date") == run_date) & (pl.col("policy") == k)
                              & (pl.col("metric") == "oracle_share"))["value"][0] for k in kinds}
        fig, fig_p = {}, {}
        vp = v.with_columns(label=pl.col("purchased").fill_null(0)) if "purchased" in v.columns else None
        for kind in kinds:
            fig[kind] = validation_figures(v, v[kind].to_numpy())
            if vp is not None:
                fig_p[kind] = validation_figures(vp, v[kind].to_numpy())
        lr = "logistic_regression"
        for kind in kinds:
            f = fig[kind]
            rows.append({"seed": seed, "run_date": run_date, "kind": kind, "rows": v.height,
                         "positives": int(v["label"].sum()), "auc": f["auc"], "log_loss": f["log_loss"],
                         "grouped_auc": f["grouped_auc"], "ndcg_at_10": f["ndcg_at_10"],
                         "customers": f["ranking_customers"],
                         "z_vs_lr": selection.paired_z(np.array(f["customer_auc"]), np.array(fig[lr]["customer_auc"])),
                         "purchase_grouped_auc": fig_p[kind]["grouped_auc"] if fig_p else None,
                         "purchase_customers": fig_p[kind]["ranking_customers"] if fig_p else None,
                         "purchase_z_vs_lr": selection.paired_z(np.array(fig_p[kind]["customer_auc"]),
                                                                np.array(fig_p[lr]["customer_auc"])) if fig_p else None,
                         "oracle_share": share[kind]})

        def chosen(figures, tie_z=None, old=False):
            trained = [TrainedModel(models.StoredModel(k, "", [], 1.0, {}), figures[k]) for k in kinds]
            if old:  # main's rule: global AUC/log-loss down the training order
                best = trained[0]
                for m in trained[1:]:
                    best = m if models._global_better(m.metrics, best.metrics) else best
                return best.stored.kind
            saved = selection.TIE_Z
            selection.TIE_Z = tie_z
            try:
                return best_model(trained).stored.kind
            finally:
                selection.TIE_Z = saved

        candidates = {"global AUC/log-loss (main)": chosen(fig, old=True),
                      "NDCG@10 within customers, best": max(kinds, key=lambda k: fig[k]["ndcg_at_10"])}
        candidates["grouped AUC, best"] = max(kinds, key=lambda k: fig[k]["grouped_auc"])
        if fig_p:
            candidates["purchase grouped AUC, best"] = max(kinds, key=lambda k: fig_p[k]["grouped_auc"])
        for z in (0.0, 0.5, 1.0, 1.5, 1.645, 2.0):
            name = f"grouped AUC, paired tie z={z:g}"
            candidates[name] = chosen(fig, z)
            if fig_p:
                candidates[("purchase " + name)] = chosen(fig_p, z)
        best_share = max(share.values())
        for name, kind in candidates.items():
            rules.append({"rule": name, "seed": seed, "run_date": run_date, "kind": kind,
                          "oracle_share": share[kind], "regret": best_share - share[kind]})
    table, rules = pl.DataFrame(rows), pl.DataFrame(rules)
    table.write_csv(workdir / "tuning.csv")
    rules.write_csv(workdir / "rules.csv")
    summary = (rules.group_by("rule", maintain_order=True)
               .agg(served=pl.col("kind").str.replace("logistic_regression", "lr").str.replace("lightgbm", "lgbm")
                    .str.replace("wide_deep", "wd").str.replace("blend", "bl").str.join(","),
                    oracle_share=pl.col("oracle_share").mean(), regret_mean=pl.col("regret").mean(),
                    regret_max=pl.col("regret").max(), best=(pl.col("regret") == 0).sum(), n=pl.len()))
    return table, summary


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
    table, summary = analyse(workdir)
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=250, fmt_str_lengths=60):
        print(table)
        print(summary)
    print(f"files in {workdir}")


if __name__ == "__main__":
    main()
