"""Diagnostic: how far could a ranker go with true labels, and with the simulator's hidden traits as features?

Trains LightGBM regressors on the TRUE p_redeem of six weeks of candidate-pool
pairs before a run date and ranks that date's pool with them, adding hidden
traits one group at a time (docs/EVALUATION.md, "What limits the oracle share").
Run it on a tuning seed (docs/EVALUATION.md): it is a diagnostic, not a
published figure. The warehouse is copied first (feature partitions of the
earlier days are written into the copy).

Usage::

    .venv/bin/python benchmarks/oracle_ceiling.py --warehouse <simulated warehouse, tuning seed> --day 2025-11-06
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
import lightgbm as lgb  # noqa: E402
import polars as pl  # noqa: E402

from metro_assets.candidates.retrieval import candidate_pool  # noqa: E402
from metro_assets.features.compute import feature_matrix  # noqa: E402
from metro_assets.features.daily import write_features  # noqa: E402
from metro_assets.monitoring.evaluation import pool_truth  # noqa: E402
from metro_assets.ranking import models  # noqa: E402
from metro_assets.ranking.scoring import top_k  # noqa: E402
from metro_assets.ranking.training import (RANKER_FEATURES, as_matrix, train_rankers, training_set,  # noqa: E402
                                           window_rule)
from metro_assets.settings import CandidateLimits, EmbeddingSettings, RankerSettings  # noqa: E402
from metro_assets.simulation import oracle  # noqa: E402
from metro_assets.simulation.truth import true_probabilities  # noqa: E402
from metro_assets.warehouse import ensure_schema  # noqa: E402

HIDDEN = """
SELECT r.customer_id, r.offer_id, r.day, t.visit_rate, t.promo_sensitivity, t.depth_threshold, t.brand_loyalty,
       (t.response_type = 'sleeping_dog')::INT AS dog, (t.response_type = 'persuadable')::INT AS persuadable,
       coalesce(cp.weight, 0) AS weight, cp.cycle_days
FROM h_req r JOIN offers o ON o.offer_id = r.offer_id
JOIN sim.customer_traits t ON t.customer_id = r.customer_id
LEFT JOIN sim.customer_products cp ON cp.customer_id = r.customer_id AND cp.product_id = o.product_id
"""
VARIANTS = [  # the ranker's features include the observable product history (purchase days, dueness)
    ("the ranker's features, true labels", []),
    ("+ hidden per-product taste weight", ["weight"]),
    ("+ hidden cycle length and dueness", ["weight", "cycle_days", "due"]),
    ("+ hidden response type", ["dog", "persuadable"]),
    ("+ every hidden trait", ["weight", "cycle_days", "due", "dog", "persuadable",
                             "visit_rate", "depth_threshold", "promo_sensitivity", "brand_loyalty"]),
]


def with_hidden(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (a feature matrix) with the hidden traits, and how due the product is on the hidden cycle."""
    con.register("h_req", frame.select("customer_id", "offer_id", "day").to_arrow())
    try:
        hidden = frame.join(con.sql(HIDDEN).pl(), on=["customer_id", "offer_id", "day"], how="left")
    finally:
        con.unregister("h_req")
    return hidden.with_columns(due=pl.col("days_since_product_purchase") / pl.col("cycle_days"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--day", required=True, type=date.fromisoformat, help="a run date with a pool and a model")
    parser.add_argument("--sample", type=int, default=600_000, help="training pairs (of the six weeks' pools)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "warehouse.duckdb"
        shutil.copy(args.warehouse, copy)
        con = duckdb.connect(str(copy))
        ensure_schema(con)  # a warehouse simulated by older code gains today's columns
        day = args.day
        pool = con.sql("""SELECT c.customer_id, c.offer_id, o.product_id, p.category FROM candidate_pool c
            JOIN offers o USING (offer_id) JOIN products p ON p.product_id = o.product_id WHERE c.day = $d""",
                       params={"d": day}).pl()
        truth = pool_truth(con, day).select("customer_id", "offer_id", "p_redeem")

        def value(scored: pl.DataFrame) -> float:
            top = top_k(scored.join(pool, on=["customer_id", "offer_id"]), 10, 3)
            v = top.with_columns(att=pl.Series(oracle.position_attention(top["rank"].to_numpy()))).join(
                truth, on=["customer_id", "offer_id"])
            return float((v["att"] * v["p_redeem"]).sum())

        best = value(truth.rename({"p_redeem": "score"}))
        rows = []
        monday = day - timedelta(days=day.weekday())
        con.register("pool_req", pool.select("customer_id", "offer_id").with_columns(day=pl.lit(day)).to_arrow())
        pool_matrix = feature_matrix(con, "pool_req")
        # the rankers as today's code trains them on the retrain Monday, from logged redemptions
        for trained in train_rankers(training_set(con, monday, window_rule(RankerSettings()),
                                                  embedding=EmbeddingSettings(feature=False)))[0]:
            stored = trained.stored
            scored = pool_matrix.select("customer_id", "offer_id").with_columns(
                score=pl.Series(models.load(stored).predict(as_matrix(pool_matrix, stored.features))))
            rows.append((f"{stored.kind}, logged labels (trained {monday})", value(scored) / best))
        frames = []
        for w in range(1, 7):  # the pools of six earlier Mondays
            d = monday - timedelta(days=7 * w)
            for table in ("customer_features", "offer_features"):
                write_features(con, table, d)
            frames.append(candidate_pool(con, d, d + timedelta(days=1), CandidateLimits())
                          .select("customer_id", "offer_id").unique().with_columns(day=pl.lit(d)))
        req = pl.concat(frames).sample(min(args.sample, sum(f.height for f in frames)), seed=1)
        con.register("dense_req", req.to_arrow())
        train = feature_matrix(con, "dense_req").join(true_probabilities(con, "dense_req"),
                                                      on=["customer_id", "offer_id", "day"])
        train = with_hidden(con, train).sort("day", "customer_id", "offer_id")
        scoring = with_hidden(con, pool_matrix)
        params = dict(objective="cross_entropy", learning_rate=0.05, num_leaves=63, min_data_in_leaf=50,
                      verbose=-1, seed=1, num_threads=2, deterministic=True)
        for name, extra in VARIANTS:
            cols = [*RANKER_FEATURES, *extra]
            model = lgb.train(params, lgb.Dataset(train.select(pl.col(cols).cast(pl.Float64)).to_numpy(),
                                                  train["p_redeem"].to_numpy()), 300)
            scored = scoring.select("customer_id", "offer_id").with_columns(
                score=pl.Series(model.predict(scoring.select(pl.col(cols).cast(pl.Float64)).to_numpy())))
            rows.append((name, value(scored) / best))
        con.close()
    print(f"oracle share on {day} ({pool.height:,} pool pairs; {train.height:,} true-label training pairs)")
    for name, share in rows:
        print(f"  {name:62s} {share:.3f}")


if __name__ == "__main__":
    main()
