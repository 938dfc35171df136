"""The simulated online loop (issue 18) at tiny scale: determinism, what a policy sees, the rules every policy obeys."""

import gc
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from metro_assets.bandit import environment as envmod
from metro_assets.bandit.environment import Candidates, Catalog, Environment, Observation
from metro_assets.bandit.features import LogState
from metro_assets.bandit.learning import TrainingLog, delay_cdf, fit_logistic
from metro_assets.bandit.policies import POLICIES, Policy, make
from metro_assets.bandit.run import run_scenario, summarise
from metro_assets.settings import SCALES
from metro_assets.simulation import world

TINY = SCALES["tiny"]
HISTORY_START = date(2025, 8, 15)
START = HISTORY_START + timedelta(days=TINY.history_days)  # the tiny run date
DAYS = 4


class Spy(Policy):
    """Scores at random and keeps everything the environment hands it."""

    name = "random"

    def begin(self, catalog, log, train, t, seed, k):
        super().begin(catalog, log, train, t, seed, k)
        self.received = [catalog, log, train]

    def scores(self, t, cand, truth=None):
        self.received += [cand, truth]
        return self.rng(t).random(len(cand))

    def observe(self, t, obs, cand, rows):
        self.received += [obs, cand, rows]


@pytest.fixture(scope="module")
def cold_start_run():
    """Every policy over 4 tiny days of the cold-start scenario (launch on day 2), with the shown lists."""
    shown = []

    def record(env, t, policy, cand, rows, rank, obs):
        shown.append((t, policy.name, cand, rows, rank, obs))

    frame, info = run_scenario(TINY, 7, HISTORY_START, START, DAYS, "cold_start", on_day=record)
    return frame, info, shown


def test_the_same_seed_gives_the_same_trajectory(cold_start_run):
    frame, _, _ = cold_start_run
    again, _ = run_scenario(TINY, 7, HISTORY_START, START, DAYS, "cold_start", policies=("thompson", "batch"))
    mine = frame.filter(pl.col("policy").is_in(["thompson", "batch"])).sort("policy", "day")
    assert again.sort("policy", "day").equals(mine)
    other, _ = run_scenario(TINY, 8, HISTORY_START, START, DAYS, "cold_start", policies=("thompson",))
    assert not other["expected_redemptions"].equals(frame.filter(pl.col("policy") == "thompson")
                                                    .sort("day")["expected_redemptions"])


def test_every_policy_meets_the_same_customers_and_the_oracle_has_no_regret(cold_start_run):
    frame, _, shown = cold_start_run
    assert frame.height == DAYS * len(POLICIES)
    per_day = frame.group_by("day").agg(pl.col("customers_reached").n_unique())
    assert per_day["customers_reached"].max() == 1
    assert frame["customers_reached"].min() > 50
    assert (frame["regret"] >= 0).all()
    assert frame.filter(pl.col("policy") == "oracle")["regret"].abs().max() < 1e-9
    totals = dict(frame.group_by("policy").agg(pl.col("expected_redemptions").sum()).iter_rows())
    assert totals["oracle"] > max(v for p, v in totals.items() if p != "oracle")
    assert totals["batch"] > 1.3 * totals["random"]  # the learned model is far from random
    # the same customers: the lists of a day differ by policy, their owners do not
    owners = {}
    for t, name, cand, rows, _, _ in shown:
        owners.setdefault(t, []).append(set(cand.c.tolist()))
    assert all(all(s == v[0] for s in v) for v in owners.values())


def test_shown_lists_honour_the_serving_rule_eligibility_and_caps(cold_start_run):
    _, _, shown = cold_start_run
    env = Environment(TINY, 7, HISTORY_START, START, DAYS, "cold_start")
    o = env.offers
    for t, name, cand, rows, rank, obs in shown:
        c, off = cand.c[rows], cand.o[rows]
        lists = pl.DataFrame({"c": c, "o": off, "p": o["product"][off], "k": env.offer_category[off], "rank": rank})
        assert lists.group_by("c").len()["len"].max() <= 10
        assert lists.group_by("c", "p").len()["len"].max() == 1            # never the same product twice
        assert lists.group_by("c", "k").len()["len"].max() <= 3            # METRO_MAX_PER_CATEGORY
        ranks = lists.group_by("c").agg(pl.col("rank").sort())["rank"].to_list()
        assert all(r == list(range(1, len(r) + 1)) for r in ranks)
        assert ((o["start"][off] <= t) & (o["end"][off] >= t)).all()     # live offers only
        assert o["stores"][off, env.pop.home_store[c] - 1].all()         # in the customer's store scope
        assert o["segments"][off, env.pop.segment[c]].all()
        assert np.array_equal(obs.impression_customer, env.pop.customer_id[c])
    # redemption caps: over the whole run, no capped offer is redeemed past its cap in any policy's world
    for name in POLICIES:
        reds = np.concatenate([obs.redemption_offer for _, n, _, _, _, obs in shown if n == name])
        capped = o["cap"] > 0
        counts = np.bincount(reds - 1, minlength=len(o["cap"]))
        # the run's own redemptions cannot exceed the cap left at the start
        assert (counts[capped] <= o["cap"][capped]).all()


def test_cold_start_offers_appear_only_from_their_launch(cold_start_run):
    frame, info, shown = cold_start_run
    launch = info["new_offers_launch"]
    assert launch == START + timedelta(days=DAYS // 2)
    before = frame.filter(pl.col("day") < launch)["new_offer_impressions"].sum()
    after = frame.filter(pl.col("day") >= launch)
    assert before == 0
    assert after.filter(pl.col("policy") == "random")["new_offer_impressions"].sum() > 0


def test_a_policy_never_sees_the_worlds_hidden_state():
    import types

    from metro_assets.bandit import run as runmod

    spy, thompson, seen_truth = Spy(), make("thompson"), []

    class Oracle(Policy):
        name = "oracle"
        uses_truth = True

        def scores(self, t, cand, truth=None):
            seen_truth.append(truth)
            return truth["p_redeem"]

    made = {"random": spy, "oracle": Oracle(), "thompson": thompson}
    original = runmod.make
    runmod.make = lambda name: made[name]
    try:
        run_scenario(TINY, 7, HISTORY_START, START, 2, "steady", policies=("thompson", "random", "oracle"))
    finally:
        runmod.make = original
    # only the oracle is handed the truth
    assert seen_truth and all("p_redeem" in t for t in seen_truth)
    assert not any(isinstance(x, dict) for x in spy.received)
    # what a policy gets: public facts, the candidates, the retailer's log; nothing it holds leads to the world
    allowed = (Catalog, Candidates, Observation, LogState, TrainingLog, np.ndarray, pl.DataFrame, type(None))
    assert all(isinstance(x, allowed) for x in spy.received)
    hidden = (world._Population, world._Catalogue, world._Tastes, world.WorldState, Environment,
              envmod.Trajectory)
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
    for policy in (spy, thompson):
        todo, seen = [policy], set()
        while todo:
            obj = todo.pop()
            if id(obj) in seen or isinstance(obj, skip):
                continue
            seen.add(id(obj))
            assert not isinstance(obj, hidden), f"{policy.name} can reach {type(obj).__name__}"
            todo.extend(gc.get_referents(obj))
    # the catalog holds only columns of the raw tables (or values derived from them)
    public = {"customer_id", "segment", "home_store", "product_id", "category", "brand", "base_price", "margin",
              "offer_id", "offer_product", "discount_type", "discount_value", "depth", "offer_start", "offer_end",
              "max_redemptions", "history_start"}
    assert set(Catalog.__dataclass_fields__) == public
    assert set(Observation.__dataclass_fields__) == {
        "t", "day", "line_customer", "line_product", "line_quantity", "line_promo", "impression_customer",
        "impression_offer", "impression_position", "redemption_customer", "redemption_offer"}


def test_the_warm_up_is_the_worlds_own_history():
    """Driven by the legacy policy's impressions, the environment writes exactly simulate()'s rows."""
    days = 10
    env = Environment(TINY, 7, HISTORY_START, HISTORY_START + timedelta(days=days), 1)
    reds, lines = [], []
    for obs, _ in env.warm_up():
        reds.append(pl.DataFrame({"customer_id": obs.redemption_customer, "offer_id": obs.redemption_offer,
                                  "day": pl.Series([obs.day] * len(obs.redemption_offer), dtype=pl.Date)}))
        lines.append(len(obs.line_customer))
    tables = world.simulate(TINY, 7, HISTORY_START, HISTORY_START + timedelta(days=days))
    mine = pl.concat(reds).sort("customer_id", "offer_id", "day")
    theirs = tables["redemptions"].select("customer_id", "offer_id", "day").sort("customer_id", "offer_id", "day")
    assert mine.equals(theirs) and mine.height > 0
    assert sum(lines) == tables["order_items"].height


def test_the_black_friday_shock_raises_everyones_redemptions():
    frame, _ = run_scenario(TINY, 7, HISTORY_START, START, 4, "black_friday", policies=("random",))
    steady, _ = run_scenario(TINY, 7, HISTORY_START, START, 4, "steady", policies=("random",))
    shock_day = START + timedelta(days=2)
    a = frame.filter(pl.col("day") == shock_day)
    b = steady.filter(pl.col("day") == shock_day)
    assert a["customers_reached"][0] > 2 * b["customers_reached"][0]
    assert a["expected_redemptions"][0] > 2 * b["expected_redemptions"][0]


def test_laplace_fit_recovers_coefficients_and_its_uncertainty_shrinks_with_data():
    rng = np.random.default_rng(3)
    n = 20_000
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ np.array([-3.0, 1.0, -0.5]))))).astype(float)
    big = fit_logistic(X, y, np.ones(n), np.zeros(3), np.full(3, 1e-3))
    small = fit_logistic(X[:2000], y[:2000], np.ones(2000), np.zeros(3), np.full(3, 1e-3))
    assert np.allclose(big.mean, [-3.0, 1.0, -0.5], atol=0.15)
    assert (np.diag(big.cov) < np.diag(small.cov)).all()
    draws = big.sample(np.random.default_rng(0), 4000)
    assert np.allclose(draws.std(axis=0), np.sqrt(np.diag(big.cov)), rtol=0.1)


def test_open_windows_count_by_the_delay_distribution():
    log = TrainingLog(n_offers=5)
    # 40 impressions on day 0, redeemed after 0..3 days; one impression on day 9, not redeemed yet
    c = np.arange(40)
    log.add(0, np.zeros((40, 1)), c, np.zeros(40, np.int64))
    for d in range(4):
        log.add_redemptions(d, c[d::4], np.zeros(10, np.int64))
    log.add(9, np.zeros((1, 1)), np.array([99]), np.array([1]))
    cdf = delay_cdf(log, now=10)
    assert cdf[1] == pytest.approx(0.25) and cdf[4] == pytest.approx(1.0)
    seed = -(99 * 7919 + 1 * 104_729 + 9 * 1_299_709) % 1000  # the open impression's negative is sampled
    rows, X, y, w = log.labelled(now=10, window=56, closed_only=False, cdf=cdf, seed=seed)
    assert y[rows < 40].sum() == 40  # every day-0 impression was redeemed within its week
    assert rows[-1] == 40 and y[-1] == 0 and w[-1] == pytest.approx(cdf[1] / 0.25)
    closed = log.labelled(now=10, window=56, closed_only=True, cdf=cdf, seed=seed)
    assert 40 not in closed[0]  # the batch ranker waits for closed windows


def test_unknown_scenario_and_policy_are_refused():
    with pytest.raises(ValueError, match="scenario"):
        Environment(TINY, 7, HISTORY_START, START, 1, "boxing_day")
    with pytest.raises(ValueError, match="policy"):
        make("greedy")


def test_summary_reports_the_quality_bar_figures(cold_start_run):
    frame, info, _ = cold_start_run
    s = summarise(frame, START, DAYS, info["new_offers_launch"])
    assert set(s["policy"]) == set(POLICIES)
    assert s.filter(pl.col("policy") == "batch")["vs_batch_expected"][0] == pytest.approx(1.0)
    assert s.filter(pl.col("policy") == "oracle")["regret_first_half"][0] == 0
