"""Off-policy estimates on a synthetic log whose answer is known."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from metro_assets.monitoring.offpolicy import estimates, per_customer

CUSTOMERS, OFFERS, K = 6000, 30, 10


def world(seed: int = 0):
    """A targeted logging policy (favouring offers customers redeem LESS), rewards and a target top-10."""
    rng = np.random.default_rng(seed)
    q = 1.0 / (1.0 + np.exp(-rng.normal(-2.0, 1.0, (CUSTOMERS, OFFERS))))  # true redemption probabilities
    mu = np.clip(0.5 - 1.5 * q + rng.normal(0, 0.05, q.shape), 0.03, 0.6)  # inclusion probabilities
    shown = rng.random(q.shape) < mu
    reward = (rng.random(q.shape) < q).astype(int)
    c, a = np.nonzero(shown)
    log = pl.DataFrame({"customer_id": c, "offer_id": a, "list_id": c, "propensity": mu[c, a],
                        "reward": reward[c, a]})
    score = q + rng.normal(0, 0.05, q.shape)  # a good but imperfect target policy
    top = np.argsort(-score, axis=1)[:, :K]
    target = pl.DataFrame({"customer_id": np.repeat(np.arange(CUSTOMERS), K), "offer_id": top.ravel()})
    truth = np.take_along_axis(q, top, axis=1).sum(axis=1).mean()
    return log, target, truth


def test_ips_and_snips_recover_the_target_value_that_the_naive_estimate_misses():
    log, target, truth = world()
    est = estimates(per_customer(log, target), replicates=200, seed=1)
    for name in ("ips_redemptions_at_10", "snips_redemptions_at_10"):
        value, low, high = est[name]
        assert value == pytest.approx(truth, rel=0.05)
        assert low <= truth <= high
    # what the log shows without reweighting: the reward rate of the target's shown offers x 10
    hits = log.join(target, on=["customer_id", "offer_id"], how="semi")
    naive = hits["reward"].mean() * K
    assert abs(naive - truth) / truth > 0.1
    ess = est["ess"][0]
    assert 0 < ess < hits.height  # unequal weights: worth fewer impressions than were logged


def test_ess_equals_the_impressions_when_weights_are_equal_and_clipping_biases_down():
    log, target, truth = world()
    flat = log.with_columns(propensity=pl.lit(0.25))
    weighted = flat.join(target, on=["customer_id", "offer_id"], how="semi").height
    assert estimates(per_customer(flat, target), replicates=20)["ess"][0] == pytest.approx(weighted)
    clipped = per_customer(log, target, max_weight=3.0)
    assert clipped["clipped"].sum() > 0
    assert estimates(clipped, replicates=20)["ips_redemptions_at_10"][0] < 0.9 * truth


def test_only_target_offers_live_on_the_list_day_count_as_slots():
    shown = date(2025, 1, 5)
    log = pl.DataFrame({"customer_id": [1, 2], "offer_id": [10, 10], "list_id": [1, 2], "propensity": [0.5, 0.5],
                        "reward": [1, 0], "day": [shown, shown]})
    target = pl.DataFrame({"customer_id": [1, 1, 2, 2], "offer_id": [10, 11, 10, 11],
                           # offer 11 starts after the list was shown: the logging policy could not show it
                           "start_date": [date(2025, 1, 1), date(2025, 1, 9)] * 2,
                           "end_date": [date(2025, 1, 8), date(2025, 1, 15)] * 2})
    per = per_customer(log, target)
    assert per["slots"].to_list() == [2.0, 2.0] and per["live"].to_list() == [1.0, 1.0]
    est = estimates(per, replicates=20)
    # per live slot: weight 2 x one reward over 2 live slots; times 2 slots per list
    assert est["ips_redemptions_at_10"][0] == pytest.approx(2.0)
    assert est["snips_redemptions_at_10"][0] == pytest.approx(1.0)  # 2 / total weight 4, times 2 slots


def test_exploration_slots_and_positions():
    # one list of 5: four legacy slots (propensity 0.9) and an exploration slot (0.02 per slot -> 0.1 in the list)
    log = pl.DataFrame({"customer_id": [1] * 5, "offer_id": [1, 2, 3, 4, 5], "list_id": [1] * 5,
                        "propensity": [0.9, 0.9, 0.9, 0.9, 0.02], "reward": [0, 0, 0, 1, 1],
                        "position": [1, 2, 3, 4, 5], "is_exploration": [False] * 4 + [True]})
    target = pl.DataFrame({"customer_id": [1, 1], "offer_id": [4, 5], "rank": [1, 2]})
    per = per_customer(log, target).row(0, named=True)
    assert per["w0"] == pytest.approx(1 / 0.9 + 1 / 0.1)
    # offer 4 seen at slot 4, counted at slot 1: attention 1 / 4^-0.5 = 2; offer 5 from slot 5 to slot 2
    assert per["wr"] == pytest.approx(2 / 0.9 + (5 / 2) ** 0.5 / 0.1)
