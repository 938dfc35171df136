"""Diagnostic: is SNIPS off because the estimator is biased, or because the log is too small to say?

For one evaluated run date D of a simulated warehouse, per policy (the served
model, the rule baselines, the oracle):

* ``causal``: expected redemptions@10 per pool customer from the truth (what
  ``offline_evaluation`` records), and ``within caps`` (the same where each
  offer yields at most what is left of its cap);
* ``snips``: the estimate from the logged rewards (what ``offline_evaluation`` records);
* ``snips truth``: the same estimator fed each logged impression's *expected*
  reward (the truth's p_redeem at its day and slot) instead of its outcome:
  an estimator without bias lands near ``causal`` here;
* ``within 25%``: the share of 200 logs whose outcomes are drawn from those
  expected rewards (the same impressions, weights and truth) that put SNIPS
  within 25% of ``causal``: how often the bar can be met by a sound estimator
  on a log of this size;
* ``ess``: the effective number of impressions behind the estimate.

Run it on a tuning seed (docs/EVALUATION.md, "Off-policy estimates").

Usage::

    .venv/bin/python benchmarks/offpolicy_check.py --warehouse <evaluated warehouse> --day 2026-01-21
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from metro_assets.monitoring import evaluation as ev  # noqa: E402
from metro_assets.monitoring import offpolicy  # noqa: E402
from metro_assets.ranking.allocation import offer_caps, offer_economics  # noqa: E402
from metro_assets.ranking.scoring import offer_items, top_k  # noqa: E402
from metro_assets.simulation import oracle  # noqa: E402
from metro_assets.simulation.truth import true_probabilities  # noqa: E402

DRAWS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--day", required=True, type=date.fromisoformat)
    args = parser.parse_args()
    day = args.day
    con = duckdb.connect(str(args.warehouse), read_only=True)
    pool = con.sql("SELECT DISTINCT customer_id, offer_id FROM candidate_pool WHERE day = $d", params={"d": day}).pl()
    pool = pool.join(offer_items(con), on="offer_id", how="left")
    economics = offer_economics(con, pool["offer_id"])
    rankings = {"model": con.sql("SELECT customer_id, offer_id, rank FROM recommendations WHERE run_date = $d",
                                 params={"d": day}).pl()}
    for name, scored in ev.policy_scores(con, day, pool, economics).items():
        rankings[name] = top_k(scored, ev.K, ev.MAX_PER_CATEGORY)
    truth = ev.pool_truth(con, day).join(economics, on="offer_id", how="left")
    rankings["oracle"] = top_k(truth.select("customer_id", "offer_id", score="p_redeem").join(
        pool, on=["customer_id", "offer_id"]), ev.K, ev.MAX_PER_CATEGORY)
    caps = offer_caps(con, day)
    customers = pool.select("customer_id").unique().sort("customer_id")

    log = offpolicy.logged_lists(con, day)
    con.register("logged", log.select("customer_id", "offer_id", "day").to_arrow())
    expected = true_probabilities(con, "logged").select("customer_id", "offer_id", "day", "p_redeem")
    log = log.join(expected, on=["customer_id", "offer_id", "day"], how="left").with_columns(
        expected=pl.col("p_redeem").fill_null(0.0) * pl.Series(oracle.position_attention(log["position"].to_numpy())))
    dates = economics.select("offer_id", "start_date", "end_date")
    rng = np.random.default_rng(0)
    draws = rng.random((DRAWS, log.height))
    print(f"{day}: {log.height} impressions in the log window, {log['reward'].sum()} redeemed "
          f"(expected {log['expected'].sum():.1f}), {len(customers)} pool customers, {caps.height} capped offers\n")
    print("| policy | causal | within caps | snips | snips truth | within 25% | ess |")
    print("|---|---|---|---|---|---|---|")
    for policy, ranked in rankings.items():
        target = ranked.select("customer_id", "offer_id", "rank").join(dates, on="offer_id")
        causal = ev.customer_values(ranked, truth, customers)["expected"].mean()
        capped = ev.within_caps(ranked, truth, customers, caps)["within"].mean()

        def snips(reward: pl.Series) -> tuple[float, float]:
            est = offpolicy.estimates(offpolicy.per_customer(log.with_columns(reward=reward), target), replicates=1)
            return (est["snips_redemptions_at_10"][0], est["ess"][0]) if est else (float("nan"), 0.0)

        observed, ess = snips(log["reward"])
        sound, _ = snips(log["expected"])
        hits = np.mean([abs(snips(pl.Series((d < log["expected"].to_numpy()).astype(np.int64)))[0] - causal)
                        <= 0.25 * causal for d in draws])
        print(f"| {policy} | {causal:.3f} | {capped:.3f} | {observed:.3f} | {sound:.3f} | {hits:.0%} | {ess:.0f} |")


if __name__ == "__main__":
    main()
