"""The simulated world as a day-by-day environment a policy can drive (issue 18).

From a start date, each day: the world decides who comes (customers who open
the app or walk in: the same people, whatever the policy); a policy scores
each such customer's eligible offers; the one selection rule of serving
(:func:`metro_assets.ranking.scoring.top_k`: best first, never the same
product twice, at most ``max_per_category`` per category, ``k`` slots) turns
the scores into shown lists; the world answers with its true behaviour
(:func:`metro_assets.simulation.world.day_step`, the very code that writes the
raw tables) and the policy receives an :class:`Observation`: what a retailer
logs (impressions, redemptions, purchase lines), nothing hidden.

Before the start date the world runs its own history under the legacy policy
(the logged history every policy starts from, identical for all of them).

Common random numbers. Every policy's run starts from the same state and
meets, each day, the same customers (drawn from a stream seeded by (seed,
day), one uniform per customer), the same channels, the same noticing,
persuasion and redemption-delay noise for a given (customer, offer, day)
(hashed from them, so it does not depend on what else was shown), the same
daily shocks and the same calendar. Baskets are drawn from the world's own
per-day stream: identical while two runs' visitors are identical, and
re-aligned at the start of every day.

Examples
--------
>>> from datetime import date
>>> from metro_assets.settings import SCALES
>>> env = Environment(SCALES["tiny"], 7, date(2025, 8, 15), date(2025, 9, 12), days=2)
>>> env.t0, env.n_days
(28, 30)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterator

import numpy as np
import polars as pl

from metro_assets.ranking.scoring import top_k
from metro_assets.settings import Scale
from metro_assets.simulation import oracle, world
from metro_assets.simulation.catalog import CATEGORIES, CHANNEL_SHARES, SEGMENTS
from metro_assets.simulation.scenarios import SCENARIO_EFFECTS

#: Scenarios of ``bandit_simulation`` (one partition each).
SCENARIOS = ("steady", "cold_start", "black_friday")
NEW_OFFERS = 50          # offers launched mid-period in the cold_start scenario
SHOCK_DAYS = 3           # the black_friday scenario's doorbuster weekend, mid-period
_REACH, _NEW_OFFERS, _NOISE = 31, 32, 33  # random streams of the environment (the world's are 1..7)
FATIGUE_DAYS = world.FATIGUE_DAYS


def _hash_uniform(seed: int, stream: int, c: np.ndarray, o: np.ndarray, t: int) -> np.ndarray:
    """A uniform in (0, 1) per (customer, offer) on day ``t``: the same whatever else is shown (splitmix64)."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(stream) * np.uint64(0xD1B54A32D192ED03)
             + np.asarray(c, dtype=np.uint64) * np.uint64(0x94D049BB133111EB)
             + np.asarray(o, dtype=np.uint64) * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(t + 1_000))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53)


@dataclass(frozen=True)
class Catalog:
    """What a retailer knows about its own customers, products and offers (the raw tables' public columns).

    Arrays are indexed by position: customer ``i`` has ``customer_id[i]``,
    product ``j`` has ``product_id[j]``, offer ``o`` has ``offer_id[o]``.
    Category and brand are small integer codes of the public names.
    """

    customer_id: np.ndarray
    segment: np.ndarray
    home_store: np.ndarray
    product_id: np.ndarray
    category: np.ndarray        # per product
    brand: np.ndarray           # per product, 0..BRANDS_PER_CATEGORY-1 within its category
    base_price: np.ndarray
    margin: np.ndarray
    offer_id: np.ndarray
    offer_product: np.ndarray   # product position of each offer
    discount_type: np.ndarray   # 0 percentage, 1 fixed amount, 2 bogo
    discount_value: np.ndarray
    depth: np.ndarray           # share of the shelf price taken off (oracle.discount_depth, from public columns)
    offer_start: np.ndarray     # day numbers (0 = the history's first day)
    offer_end: np.ndarray
    max_redemptions: np.ndarray  # -1: no cap
    history_start: date

    @property
    def n_categories(self) -> int:
        return len(CATEGORIES)

    def product_index(self, product_id: np.ndarray) -> np.ndarray:
        order = np.argsort(self.product_id)
        return order[np.searchsorted(self.product_id[order], product_id)]


@dataclass(frozen=True)
class Observation:
    """One day of the retailer's log: all a policy ever sees of the world's answer.

    Ids are the public ones (``customer_id``, ``product_id``, ``offer_id``).
    """

    t: int
    day: date
    line_customer: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_promo: np.ndarray
    impression_customer: np.ndarray
    impression_offer: np.ndarray
    impression_position: np.ndarray
    redemption_customer: np.ndarray
    redemption_offer: np.ndarray


@dataclass
class Trajectory:
    """One run of the world: its state and the impressions shown so far (for fatigue)."""

    state: world.WorldState
    imp_t: list = field(default_factory=list)
    imp_c: list = field(default_factory=list)
    imp_o: list = field(default_factory=list)

    def fork(self) -> "Trajectory":
        return Trajectory(self.state.copy(), list(self.imp_t), list(self.imp_c), list(self.imp_o))


@dataclass(frozen=True)
class Candidates:
    """The day's eligible (customer, offer) pairs of the customers who came (positions and public ids)."""

    c: np.ndarray        # customer position
    o: np.ndarray        # offer position
    frame: pl.DataFrame  # customer_id, offer_id, product_id, category: what top_k needs

    def __len__(self) -> int:
        return len(self.c)


@dataclass(frozen=True)
class DayResult:
    """What the world did with one day's lists (the truth figures are for the run's metrics only)."""

    observation: Observation
    chosen: np.ndarray        # rows of the candidates shown
    rank: np.ndarray          # their slot (1 = top)
    truth: dict               # p_redeem, p_base, uplift, spend_effect of every candidate (position 1)
    oracle_rows: np.ndarray   # the oracle's lists in this state (rows of the candidates)
    oracle_rank: np.ndarray


class Environment:
    """The world of one seed and scale, from ``history_start``, run by policies from ``start`` for ``days``.

    Parameters
    ----------
    scale : Scale
    seed : int
    history_start : date
        The world's first day (``METRO_START_DATE``).
    start : date
        The first day policies choose; the world's own history (legacy policy) runs before it.
    days : int
        Days the policies run.
    scenario : str
        ``steady``, ``cold_start`` (NEW_OFFERS offers launched on the middle day) or
        ``black_friday`` (the doorbuster shock of ``METRO_SCENARIO=black_friday`` on the
        SHOCK_DAYS days from the middle day).
    k, max_per_category : int
        The selection rule (METRO_TOP_K, METRO_MAX_PER_CATEGORY).
    exploration, holdout_share : float
        The legacy policy's logging design before ``start``.
    """

    def __init__(self, scale: Scale, seed: int, history_start: date, start: date, days: int,
                 scenario: str = "steady", k: int = 10, max_per_category: int | None = 3,
                 exploration: float = 0.10, holdout_share: float = 0.10):
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
        self.scale, self.seed, self.scenario = scale, seed, scenario
        self.history_start, self.start, self.days = history_start, start, days
        self.k, self.max_per_category = k, max_per_category
        self.exploration, self.holdout_share = exploration, holdout_share
        self.t0 = (start - history_start).days
        if self.t0 < 1:
            raise ValueError(f"start {start} must come after the history's first day {history_start}")
        self.n_days = self.t0 + days
        self.mid = self.t0 + days // 2
        self.pop = world._Population(scale, seed)
        self.cat = world._Catalogue(scale, seed)
        self.tastes = world._Tastes(scale, seed, self.pop, self.cat)
        offers = world._offers(scale, seed, self.cat, self.n_days)
        self.n_regular_offers = len(offers["offer_id"])
        if scenario == "cold_start":
            offers = _with_new_offers(offers, _new_offers(scale, seed, self.cat, self.mid))
        self.offers = offers
        shock = None
        if scenario == "black_friday":
            first = history_start + timedelta(days=self.mid)
            shock = world.Shock(first, first + timedelta(days=SHOCK_DAYS), **SCENARIO_EFFECTS["black_friday"])
        self.shock = shock
        self.cal = world._Calendar(history_start, self.n_days, shock)
        self.offer_category = self.cat.category[offers["product"]]
        self.catalog = self._catalog()

    # ----------------------------------------------------------------- public facts
    def _catalog(self) -> Catalog:
        pop, cat, o = self.pop, self.cat, self.offers
        return Catalog(
            customer_id=pop.customer_id, segment=pop.segment, home_store=pop.home_store,
            product_id=cat.product_id, category=cat.category, brand=cat.brand, base_price=cat.base_price,
            margin=cat.margin, offer_id=o["offer_id"], offer_product=o["product"], discount_type=o["kind"],
            discount_value=o["value"], depth=o["depth"], offer_start=o["start"], offer_end=o["end"],
            max_redemptions=o["cap"], history_start=self.history_start)

    def day(self, t: int) -> date:
        return self.history_start + timedelta(days=int(t))

    def is_new_offer(self, o: np.ndarray) -> np.ndarray:
        """Is each offer one of the cold_start scenario's launched offers?"""
        return np.asarray(o) >= self.n_regular_offers

    # ----------------------------------------------------------------- the history before the start
    def warm_up(self) -> Iterator[tuple[Observation, Trajectory]]:
        """The world's own history [history_start, start) under the legacy policy, day by day.

        Yields each day's observation and the trajectory (its state after the
        day); the last yielded trajectory is where every policy starts.
        """
        n_blocks = -(-self.t0 // world.HOLDOUT_BLOCK_DAYS)
        holdout = world._holdout(self.scale, self.seed, self.pop, n_blocks, self.holdout_share)
        imp = world._impressions(self.scale, self.seed, self.pop, self.cat, self.tastes, self.offers, self.t0,
                                 holdout, self.exploration)
        traj = Trajectory(world.WorldState.initial(self.scale.customers, len(self.offers["offer_id"]), self.tastes))
        traj.state.due = self.tastes.due.copy()  # the tastes' own array stays at the world's first day
        first = np.searchsorted(imp["t"], np.arange(self.t0 + 1))
        for t in range(self.t0):  # a loop over days (the world carries its state), not rows
            s = slice(first[t], first[t + 1])
            day_imp = {key: v[s] for key, v in imp.items()}
            o, li, r, _ = world.day_step(self.scale, self.seed, self.pop, self.cat, self.tastes, self.offers,
                                         self.cal, self.history_start, traj.state, t, day_imp)
            self._log(traj, t, day_imp["customer"], day_imp["offer"])
            yield self._observation(t, li, r, day_imp["customer"], day_imp["offer"], day_imp["position"]), traj

    # ----------------------------------------------------------------- a policy's day
    def reached(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Customers who come on day ``t`` (the same for every policy), their channel and time of day.

        A customer opens the app or walks in with their own daily visit
        chance (calendar and scenario included), while they are a customer.
        """
        rng = np.random.default_rng([self.seed, _REACH, t + 10_000])
        n = self.scale.customers
        u = rng.random(n)
        channel = rng.choice(len(CHANNEL_SHARES), size=n, p=CHANNEL_SHARES)
        channel = np.where((channel == 0) & ~self.pop.email_consent, 1, channel)
        seconds = rng.integers(6 * 3600, 21 * 3600, n)
        pop, cal = self.pop, self.cal
        active = (pop.join_offset <= t) & (t < pop.churn_offset)
        p = 1.0 - np.exp(-pop.visit_rate * cal.visits[t] * cal.s_visits[t])
        c = np.flatnonzero(active & (u < p))
        return c, channel[c], seconds[c]

    def candidates(self, traj: Trajectory, t: int, c: np.ndarray) -> Candidates:
        """Eligible offers of customers ``c`` on day ``t``: live, in their store and segment scope, cap not reached."""
        o = self.offers
        live = np.flatnonzero((o["start"] <= t) & (o["end"] >= t)
                              & ((o["cap"] < 0) | (traj.state.used < o["cap"])))
        pc, po = np.repeat(c, len(live)), np.tile(live, len(c))
        ok = o["stores"][po, self.pop.home_store[pc] - 1] & o["segments"][po, self.pop.segment[pc]]
        pc, po = pc[ok], po[ok]
        frame = pl.DataFrame({"customer_id": self.pop.customer_id[pc], "offer_id": o["offer_id"][po],
                              "product_id": self.cat.product_id[o["product"][po]],
                              "category": self.offer_category[po].astype(np.int64)})
        return Candidates(pc, po, frame)

    def fatigue(self, traj: Trajectory, t: int, c: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Impressions of each offer, and of its category, to the customer in the 4 weeks before ``t``."""
        keep = [i for i, d in enumerate(traj.imp_t) if t - FATIGUE_DAYS <= d < t]
        if not keep:
            return np.zeros(len(c), np.int64), np.zeros(len(c), np.int64)
        hc = np.concatenate([traj.imp_c[i] for i in keep])
        ho = np.concatenate([traj.imp_o[i] for i in keep])
        n_off, n_cat = len(self.offers["offer_id"]), len(CATEGORIES)
        return (_count(hc * n_off + ho, c * n_off + o),
                _count(hc * n_cat + self.offer_category[ho], c * n_cat + self.offer_category[o]))

    def truth(self, traj: Trajectory, t: int, cand: Candidates,
              fatigue: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        """The oracle's figures of every candidate in this run's state (position 1, channel mix)."""
        if len(cand) == 0:
            return {key: np.zeros(0) for key in ("p_redeem", "p_base", "uplift", "spend_effect")}
        f = world._impression_truth(self.pop, self.cat, self.tastes, self.offers, self.cal, self.history_start, t,
                                    cand.c, cand.o, fatigue[0], fatigue[1], due=traj.state.due)
        return {key: f[key] for key in ("p_redeem", "p_base", "uplift", "spend_effect")}

    def select(self, cand: Candidates, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``cand`` shown and their slot, by the serving rule (top_k)."""
        if len(cand) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        scores = np.asarray(scores, dtype=float)
        if scores.shape != (len(cand),) or not np.all(np.isfinite(scores)):
            raise ValueError("a policy must give one finite score per candidate")
        frame = cand.frame.with_columns(score=pl.Series(scores), row=pl.int_range(pl.len(), dtype=pl.Int64))
        chosen = top_k(frame, self.k, self.max_per_category)
        return chosen["row"].to_numpy(), chosen["rank"].to_numpy().astype(np.int64)

    def step(self, traj: Trajectory, t: int, cand: Candidates, rows: np.ndarray, rank: np.ndarray,
             channel_of: np.ndarray, seconds_of: np.ndarray,
             fatigue: tuple[np.ndarray, np.ndarray]) -> Observation:
        """Show the chosen lists and let the world run day ``t``; returns the day's log.

        ``channel_of`` and ``seconds_of`` are indexed by customer position.
        """
        c, o = cand.c[rows], cand.o[rows]
        u_delay = _hash_uniform(self.seed, _NOISE + 2, c, o, t)
        day_imp = {
            "customer": c, "offer": o, "position": rank, "channel": channel_of[c], "seconds": seconds_of[c],
            "u_notice": _hash_uniform(self.seed, _NOISE, c, o, t),
            "u_persuade": _hash_uniform(self.seed, _NOISE + 1, c, o, t),
            "delay": np.searchsorted(np.cumsum(world.REDEMPTION_DELAY), u_delay * world.REDEMPTION_DELAY.sum()),
            "fatigue_offer": fatigue[0][rows], "fatigue_category": fatigue[1][rows],
        }
        _, li, r, _ = world.day_step(self.scale, self.seed, self.pop, self.cat, self.tastes, self.offers, self.cal,
                                     self.history_start, traj.state, t, day_imp)
        self._log(traj, t, c, o)
        return self._observation(t, li, r, c, o, rank)

    # ----------------------------------------------------------------- helpers
    def _log(self, traj: Trajectory, t: int, c: np.ndarray, o: np.ndarray) -> None:
        traj.imp_t.append(t)
        traj.imp_c.append(np.asarray(c, np.int64))
        traj.imp_o.append(np.asarray(o, np.int64))
        if len(traj.imp_t) > FATIGUE_DAYS + 1:  # older days never count again
            del traj.imp_t[0], traj.imp_c[0], traj.imp_o[0]

    def _observation(self, t: int, li: dict, r: dict, ic: np.ndarray, io: np.ndarray,
                     position: np.ndarray) -> Observation:
        pop, cat, o = self.pop, self.cat, self.offers
        return Observation(
            t=t, day=self.day(t),
            line_customer=pop.customer_id[li["customer"]], line_product=cat.product_id[li["product"]],
            line_quantity=np.asarray(li["qty"]), line_promo=np.asarray(li["promo"], bool),
            impression_customer=pop.customer_id[ic], impression_offer=o["offer_id"][io],
            impression_position=np.asarray(position, np.int64),
            redemption_customer=pop.customer_id[r["customer"]], redemption_offer=o["offer_id"][r["offer"]])


def _count(history: np.ndarray, query: np.ndarray) -> np.ndarray:
    """How many times each query key occurs in ``history``."""
    h = np.sort(history)
    return np.searchsorted(h, query, side="right") - np.searchsorted(h, query, side="left")


def _new_offers(scale: Scale, seed: int, cat: world._Catalogue, launch: int, n: int = NEW_OFFERS) -> dict:
    """The cold_start scenario's launched offers: drawn like the world's own, all starting on ``launch``."""
    rng = np.random.default_rng([seed, _NEW_OFFERS, 10_000])
    pick = (cat.share_in_category ** 0.5) * (0.5 + cat.margin)
    pick /= pick.sum()
    kind = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    product = rng.choice(len(pick), size=n, p=pick)
    pct = rng.choice([10, 15, 20, 25, 30, 40, 50], size=n, p=[0.15, 0.2, 0.2, 0.15, 0.15, 0.1, 0.05])
    fixed = np.maximum(np.round(cat.base_price[product] * rng.uniform(0.1, 0.4, n), 1), 0.1)
    duration = rng.integers(14, 22, n)
    return dict(start=np.full(n, launch), duration=duration, end=launch + duration - 1, product=product, kind=kind,
                value=np.select([kind == 0, kind == 1], [pct, fixed], 1.0).astype(float),
                store_scoped=np.zeros(n, bool), stores=np.ones((n, scale.stores), bool),
                segment_scoped=np.zeros(n, bool), segments=np.ones((n, len(SEGMENTS)), bool),
                cap=np.full(n, -1),
                depth=oracle.discount_depth(np.array(["percentage", "fixed_amount", "bogo"])[kind],
                                            np.select([kind == 0, kind == 1], [pct, fixed], 1.0).astype(float),
                                            cat.base_price[product]))


def _with_new_offers(offers: dict, new: dict) -> dict:
    """The world's offers with ``new`` ones after them (so the world's own keep their positions and ids)."""
    out = {key: np.concatenate([offers[key], new[key]]) for key in offers if key != "offer_id"}
    out["offer_id"] = np.arange(1, len(out["start"]) + 1, dtype=np.int64)
    return out
