"""Run every policy through the same simulated days and measure what each caused (no Dagster).

Per day and policy (``DAY_COLUMNS``): the customers who came, impressions,
the redemptions that happened (realized, whatever day their offer was shown),
the expected redemptions of the day's lists (the truth's p_redeem x the
slot's attention, summed), the oracle's expected redemptions in the same
state (the best lists under the same rule, from the truth), the regret
(oracle minus policy, >= 0), expected incremental redemptions and incremental
margin (spend effect x margin rate minus the discount of every expected
redemption, as in docs/EVALUATION.md), the cold-start offers' impressions and
redemptions, and running sums of regret, redemptions and margin.

Examples
--------
>>> from datetime import date
>>> from metro_assets.settings import SCALES
>>> days, summary = run_scenario(SCALES["tiny"], 7, date(2025, 8, 15), date(2025, 9, 12), days=2,
...                              policies=("random", "oracle"))
>>> sorted(days["policy"].unique().to_list())
['oracle', 'random']
"""

from __future__ import annotations

import time
from typing import Callable
from datetime import date, timedelta

import numpy as np
import polars as pl

from metro_assets.bandit.environment import Environment
from metro_assets.bandit.features import LogState
from metro_assets.bandit.learning import TrainingLog
from metro_assets.bandit.policies import POLICIES, make
from metro_assets.settings import Scale
from metro_assets.simulation.oracle import position_attention

DAY_COLUMNS = ("scenario", "policy", "day", "customers_reached", "impressions", "redemptions",
               "expected_redemptions", "oracle_expected_redemptions", "regret", "expected_incremental_redemptions",
               "expected_incremental_margin", "new_offer_impressions", "new_offer_redemptions",
               "new_offer_expected_redemptions", "cumulative_regret", "cumulative_redemptions",
               "cumulative_expected_redemptions", "cumulative_incremental_margin")


def run_scenario(scale: Scale, seed: int, history_start: date, start: date, days: int = 56,
                 scenario: str = "steady", policies: tuple[str, ...] = POLICIES, k: int = 10,
                 max_per_category: int | None = 3, exploration: float = 0.10,
                 holdout_share: float = 0.10, on_day: Callable | None = None,
                 progress: Callable[[str], None] | None = None) -> tuple[pl.DataFrame, dict]:
    """Every policy from the same state over the same ``days`` days of one scenario.

    ``on_day(env, t, policy, candidates, chosen_rows, rank, observation)``, when
    given, is called after each policy's day (tests look at the shown lists);
    ``progress(line)`` gets a line per simulated week.

    Returns
    -------
    (polars.DataFrame, dict)
        One row per (day, policy) with ``DAY_COLUMNS``; and a summary: seconds
        per policy, the warm-up's seconds and impressions, the new offers' launch day.
    """
    clock = time.perf_counter()
    env = Environment(scale, seed, history_start, start, days, scenario, k, max_per_category, exploration,
                      holdout_share)
    log = LogState(env.catalog)
    train = TrainingLog(len(env.catalog.offer_id))
    traj = None
    for obs, traj in env.warm_up():  # the legacy history every policy starts from
        c, o = log.customer_index(obs.impression_customer), log.offer_index(obs.impression_offer)
        if len(c):
            train.add(obs.t, log.features(obs.t, c, o), c, o)
        train.add_redemptions(obs.t, log.customer_index(obs.redemption_customer),
                              log.offer_index(obs.redemption_offer))
        log.ingest(obs)
    summary = {"warm_up_seconds": time.perf_counter() - clock, "warm_up_impressions": len(train.column("t")),
               "scenario": scenario, "start": start, "days": days, "seed": seed, "scale": scale.name,
               "new_offers_launch": env.day(env.mid) if scenario == "cold_start" else None,
               "seconds": {}}
    runs = []
    for name in policies:  # a handful of policies, each with its own copy of the world
        p = make(name)
        t_begin = time.perf_counter()
        learns = not (p.uses_truth or name == "random")
        p.begin(env.catalog, log.copy() if learns else None, train.copy() if learns else None, env.t0, seed, k)
        runs.append((p, traj.fork(), time.perf_counter() - t_begin))
    rows = []
    for t in range(env.t0, env.n_days):  # a loop over days (each day's answer feeds the next), not rows
        reached, channel, seconds = env.reached(t)
        channel_of = np.zeros(scale.customers, np.int64)
        seconds_of = np.zeros(scale.customers, np.int64)
        channel_of[reached], seconds_of[reached] = channel, seconds
        for i, (p, tr, spent) in enumerate(runs):
            t_policy = time.perf_counter()
            cand = env.candidates(tr, t, reached)
            fatigue = env.fatigue(tr, t, cand.c, cand.o)
            truth = env.truth(tr, t, cand, fatigue)
            chosen, rank = env.select(cand, p.scores(t, cand, truth if p.uses_truth else None))
            # the oracle's lists in this state (the oracle policy's own are the same: no second pass)
            best, best_rank = (chosen, rank) if p.uses_truth else env.select(cand, truth["p_redeem"])
            obs = env.step(tr, t, cand, chosen, rank, channel_of, seconds_of, fatigue)
            p.observe(t, obs, cand, chosen)
            if on_day is not None:
                on_day(env, t, p, cand, chosen, rank, obs)
            rows.append(_day_row(env, t, p.name, reached, cand, truth, chosen, rank, best, best_rank, obs))
            runs[i] = (p, tr, spent + time.perf_counter() - t_policy)
        if progress is not None and (t - env.t0) % 7 == 6:
            week = [r for r in rows if r["day"] > env.day(t - 7)]
            regret = {p.name: round(sum(r["regret"] for r in week if r["policy"] == p.name), 1) for p, _, _ in runs}
            progress(f"{scenario} week to {env.day(t)}: regret {regret}, {time.perf_counter() - clock:.0f} s")
    for p, _, spent in runs:
        summary["seconds"][p.name] = round(spent, 1)
    summary["total_seconds"] = round(time.perf_counter() - clock, 1)
    frame = pl.DataFrame(rows).with_columns(scenario=pl.lit(scenario)).sort("policy", "day").with_columns(
        cumulative_regret=pl.col("regret").cum_sum().over("policy"),
        cumulative_redemptions=pl.col("redemptions").cum_sum().over("policy"),
        cumulative_expected_redemptions=pl.col("expected_redemptions").cum_sum().over("policy"),
        cumulative_incremental_margin=pl.col("expected_incremental_margin").cum_sum().over("policy"),
    ).select(DAY_COLUMNS)
    return frame, summary


def _day_row(env: Environment, t: int, policy: str, reached: np.ndarray, cand, truth: dict, chosen: np.ndarray,
             rank: np.ndarray, best: np.ndarray, best_rank: np.ndarray, obs) -> dict:
    att = position_attention(rank) if len(rank) else np.zeros(0)
    o = cand.o[chosen]
    cat = env.catalog
    product = cat.offer_product[o]
    units = np.where(cat.discount_type[o] == 2, 1.0 + cat.discount_value[o], 1.0)
    discount = np.nan_to_num(cat.depth[o]) * units * cat.base_price[product]
    p_redeem = truth["p_redeem"][chosen]
    margin = truth["spend_effect"][chosen] * cat.margin[product] - p_redeem * discount
    new = env.is_new_offer(o)
    red_new = env.is_new_offer(obs.redemption_offer - 1) if len(obs.redemption_offer) else np.zeros(0, bool)
    expected = float(att @ p_redeem)
    oracle = float(position_attention(best_rank) @ truth["p_redeem"][best]) if len(best) else 0.0
    return {
        "policy": policy, "day": env.day(t), "customers_reached": len(reached), "impressions": len(chosen),
        "redemptions": len(obs.redemption_offer), "expected_redemptions": expected,
        "oracle_expected_redemptions": oracle, "regret": max(oracle - expected, 0.0),
        "expected_incremental_redemptions": float(att @ truth["uplift"][chosen]),
        "expected_incremental_margin": float(att @ margin),
        "new_offer_impressions": int(new.sum()), "new_offer_redemptions": int(red_new.sum()),
        "new_offer_expected_redemptions": float(att[new] @ p_redeem[new]),
    }


def summarise(frame: pl.DataFrame, start: date, days: int, launch: date | None = None) -> pl.DataFrame:
    """One row per policy: the quality bar's figures of one run (docs/BANDIT.md).

    Mean daily regret in the first and the second half (4 weeks each of an
    8-week run) and the share of the oracle's expected redemptions it
    misses there (traffic changes with the calendar; the share does not), totals of expected and realized redemptions and incremental
    margin, the launched offers' first week (when ``launch`` is given), and
    each policy's expected and realized redemptions over the batch ranker's.
    """
    half = start + timedelta(days=days // 2)
    first_week = ((pl.col("day") >= launch) & (pl.col("day") < launch + timedelta(days=7))
                  if launch else pl.lit(False))
    out = frame.group_by("policy").agg(
        expected_redemptions=pl.col("expected_redemptions").sum(),
        redemptions=pl.col("redemptions").sum(),
        regret_first_half=pl.col("regret").filter(pl.col("day") < half).mean(),
        regret_second_half=pl.col("regret").filter(pl.col("day") >= half).mean(),
        # the share of the oracle's expected redemptions missed: the calendar changes traffic, this does not
        regret_share_first_half=pl.col("regret").filter(pl.col("day") < half).sum()
        / pl.col("oracle_expected_redemptions").filter(pl.col("day") < half).sum(),
        regret_share_second_half=pl.col("regret").filter(pl.col("day") >= half).sum()
        / pl.col("oracle_expected_redemptions").filter(pl.col("day") >= half).sum(),
        incremental_margin=pl.col("expected_incremental_margin").sum(),
        new_offer_impressions_first_week=pl.col("new_offer_impressions").filter(first_week).sum(),
        new_offer_redemptions_first_week=pl.col("new_offer_redemptions").filter(first_week).sum(),
        new_offer_expected_first_week=pl.col("new_offer_expected_redemptions").filter(first_week).sum(),
    )
    batch = out.filter(pl.col("policy") == "batch")
    if batch.height:
        out = out.with_columns(
            vs_batch_expected=pl.col("expected_redemptions") / batch["expected_redemptions"][0],
            vs_batch_realized=pl.col("redemptions") / pl.lit(max(int(batch["redemptions"][0]), 1)))
    return out.sort("expected_redemptions", descending=True)


def summary_table(frame: pl.DataFrame, start: date, days: int, launch: date | None = None) -> str:
    """:func:`summarise` as a Markdown table."""
    s = summarise(frame, start, days, launch)
    cols = s.columns
    fmt = lambda v: f"{v:,.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in s.iter_rows()]
    return "\n".join(lines)
