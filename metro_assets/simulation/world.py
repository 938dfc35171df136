"""The retail simulator (world v2): a deterministic world of customers, products,
offers and the events they produce, with no Dagster inside.

Determinism: every random draw comes from a stream seeded by
``(seed, stream, day)`` and a run always simulates from the first day of the
history, so the rows of a day never depend on the range a run covers.

Each day, in order: the legacy policy shows offers (impressions, with their
position, propensity and exploration flag; holdout customers see none); the
customers who notice an offer are persuaded or not (the truth in
:mod:`metro_assets.simulation.oracle`); customers visit (more near paydays and
weekends, less after they churn, sleeping dogs less after an offer, persuaded
customers on the day the offer brings them in); a visit buys the regular
products whose household stock is running out, exploratory lines drawn from
the customer's drifting category tastes and latent product tastes, and their
complements; offers are redeemed inside those trips (bought anyway, or added
because persuaded); purchases refill the stock (a promoted purchase stocks up
and a substitute's redemption covers the need), so the next purchase waits.

Examples
--------
>>> from datetime import date
>>> from metro_assets.settings import SCALES
>>> tables = simulate(SCALES["tiny"], seed=7, start=date(2025, 8, 15), end=date(2025, 8, 18))
>>> sorted(tables)[:3]
['customers', 'experiment_assignments', 'impressions']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterator

import numpy as np
import polars as pl

from metro_assets.settings import Scale
from metro_assets.simulation import calendar, oracle
from metro_assets.simulation.catalog import (
    BRANDS_PER_CATEGORY,
    CATEGORIES,
    CATEGORY_ARRAY,
    CHANNEL_SHARES,
    CHANNELS,
    COMPLEMENTS,
    CYCLE_DAYS,
    LOYALTY_TIERS,
    REGULARITY,
    SEGMENT_BASKET,
    SEGMENT_CATEGORY_PRIOR,
    SEGMENT_DISCOUNT_BLIND,
    SEGMENT_EXTRA_UNITS,
    SEGMENT_PROMO_BETA,
    SEGMENT_PROMO_ONLY,
    SEGMENT_REGULARS,
    SEGMENT_SHARES,
    SEGMENT_TOPUP,
    SEGMENT_VISITS,
    SEGMENTS,
    SIZES,
    SOLD_BY,
    category_brands,
)

# Random streams: one per kind of draw, each further split by day.
_CUSTOMERS, _PRODUCTS, _OFFERS, _ORDERS, _IMPRESSIONS, _TASTES, _HOLDOUT = 1, 2, 3, 4, 5, 6, 7
OFFER_LEAD_DAYS = 7        # offers are published a week before they start
OFFER_WARMUP_DAYS = 28     # offers that started before the history may still run
MEAN_OFFER_DAYS = 14
WEEKLY_REACH = 0.057       # share of customers the legacy policy reaches per week
REDEMPTION_DELAY = np.array([0.34, 0.2, 0.14, 0.11, 0.09, 0.07, 0.05])
HOLDOUT_BLOCK_DAYS = 28    # the holdout is re-drawn every 4 weeks
FATIGUE_DAYS = 28          # impressions this recent tire the customer
TASTE_EPOCH = np.datetime64("2025-01-01", "D")  # day numbers of the taste drift count from here
TASTE_PERIOD = 240.0  # days of one swing of a drifting taste
CANDIDATES_PER_CATEGORY = 10  # popularity draws that make a customer's own product set in a category
LATENT_FACTORS = 4
CHURN_MEAN_DAYS = 1500.0
LIFE_EVENT_SHARE = 0.25    # customers with a life event inside the simulated span
PROMO_DEPTH = (0.15, 0.45)  # in-store promotion: share of the line's value taken off
RAW_TABLES = ("customers", "products", "offers", "orders", "order_items", "impressions", "redemptions",
              "experiment_assignments")
TRUTH_TABLES = ("sim.customer_traits", "sim.customer_category_traits", "sim.product_traits",
                "sim.customer_products")


@dataclass(frozen=True)
class Shock:
    """A behaviour change on a range of days (a scenario such as Black Friday)."""

    start: date
    end: date  # exclusive
    visits: float = 1.0
    basket: float = 1.0
    promo: float = 0.0       # added to the chance a line is bought on promotion
    redemption: float = 0.0  # added to the persuasion logit


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index + 10_000])


def _days(start: date, n: int, offset: int = 0) -> np.ndarray:
    return np.datetime64(start, "D") + np.arange(offset, offset + n)


def _rank_within(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """0-based rank of each row within its group, by descending key (ties: row order)."""
    order = np.lexsort((np.arange(len(groups)), -keys, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    ranks_sorted = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    ranks = np.empty(len(g), dtype=np.int64)
    ranks[order] = ranks_sorted
    return ranks


def _grouped_cumulative(group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """For rows sorted by group: group + cumulative share within the group, in (g, g+1]."""
    total = np.bincount(group, weights=weight)
    cum = np.cumsum(weight)
    before = np.r_[0.0, np.cumsum(total)][group]
    return group + (cum - before) / total[group]


def _expand(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, index) for every index in the ranges [starts[i], ends[i])."""
    n = ends - starts
    owner = np.repeat(np.arange(len(starts)), n)
    first = np.repeat(starts - np.r_[0, np.cumsum(n)[:-1]], n)
    return owner, first + np.arange(n.sum())


def _unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and each key's index among them (a sort, faster than np.unique's hash here)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    first = np.r_[True, sk[1:] != sk[:-1]] if len(sk) else np.zeros(0, bool)
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return sk[first], inverse


def _first_of(keys: np.ndarray) -> np.ndarray:
    """Index of the first row of each distinct key (rows in key order)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    return order[np.r_[True, sk[1:] != sk[:-1]]] if len(sk) else np.zeros(0, np.int64)


def _member(x: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Is each x in ``sorted_keys`` (a sorted array)?"""
    if len(sorted_keys) == 0:
        return np.zeros(len(x), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, x), len(sorted_keys) - 1)
    return sorted_keys[pos] == x


def month_end(days: np.ndarray) -> np.ndarray:
    """The last six days of a month, when money is short and discounts matter more."""
    next_month = (days.astype("datetime64[M]") + 1).astype("datetime64[D]")
    return days >= next_month - 6


def taste_weights(base: np.ndarray, drift: np.ndarray, phase: np.ndarray, day_number: np.ndarray,
                  life_category: np.ndarray, life_factor: np.ndarray, life_on: np.ndarray) -> np.ndarray:
    """Category weights of (customers, categories) on a day: drifting slowly, with life events applied.

    Each taste swings by ``exp(drift * sin(2 pi day / TASTE_PERIOD + phase))``, so tastes wander
    without running away.
    """
    angle = 2.0 * np.pi * np.asarray(day_number, float)[:, None] / TASTE_PERIOD + phase
    w = base * np.exp(drift * np.sin(angle))
    hit = life_on[:, None] & (np.arange(base.shape[1])[None, :] == life_category[:, None])
    return np.where(hit, w * life_factor[:, None], w)


class _Population:
    """Customers and their hidden traits."""

    def __init__(self, scale: Scale, seed: int):
        rng = _rng(seed, _CUSTOMERS)
        n = scale.customers
        k = len(CATEGORIES)
        counts = np.floor(SEGMENT_SHARES * n).astype(int)
        counts[np.argsort(-(SEGMENT_SHARES * n - counts))[: n - counts.sum()]] += 1
        self.segment = rng.permutation(np.repeat(np.arange(len(SEGMENTS)), counts))
        store_w = 1.0 / (np.arange(scale.stores) + 3.0)
        self.home_store = rng.choice(scale.stores, size=n, p=store_w / store_w.sum()) + 1
        span = scale.history_days + scale.horizon_days
        joins_later = rng.random(n) < 0.15
        self.join_offset = np.where(joins_later, rng.integers(0, span, n), -rng.integers(1, 730, n))
        seg = self.segment
        self.visit_rate = SEGMENT_VISITS[seg] * rng.lognormal(-0.15, 0.55, n)
        self.basket_mean = SEGMENT_BASKET[seg] * rng.lognormal(-0.08, 0.4, n)
        self.topup = np.clip(SEGMENT_TOPUP[seg] + rng.normal(0, 0.12, n), 0.05, 0.9)
        sens = rng.beta(SEGMENT_PROMO_BETA[seg, 0], SEGMENT_PROMO_BETA[seg, 1])
        kind = rng.random(n)
        self.promo_only = kind < SEGMENT_PROMO_ONLY[seg]
        self.discount_blind = ~self.promo_only & (kind < SEGMENT_PROMO_ONLY[seg] + SEGMENT_DISCOUNT_BLIND[seg])
        sens = np.where(self.promo_only, np.maximum(sens, 0.85), sens)
        self.promo_sensitivity = np.where(self.discount_blind, np.minimum(sens, 0.08), sens)
        self.brand_loyalty = np.where(rng.random(n) < 0.25, rng.beta(8, 2, n), rng.beta(2, 4, n))
        taste = rng.gamma(6.0 * k * SEGMENT_CATEGORY_PRIOR[seg] / 6.0 + 0.05)
        self.preference = taste / taste.sum(axis=1, keepdims=True)
        private_label_fan = rng.random((n, k)) < np.where(seg == 0, 0.45, 0.12)[:, None]
        self.favourite_brand = np.where(private_label_fan, 0, rng.integers(1, BRANDS_PER_CATEGORY, (n, k)))
        self.email_consent = rng.random(n) < 0.62
        # v2: churn, drift, life events, response types, depth thresholds, shocks
        self.churn_offset = (np.maximum(self.join_offset, 0) + rng.exponential(CHURN_MEAN_DAYS, n)).astype(np.int64)
        self.drift = np.abs(rng.normal(0.0, 0.9, (n, k)))
        self.phase = rng.uniform(0.0, 2 * np.pi, (n, k))
        has_event = rng.random(n) < LIFE_EVENT_SHARE
        self.life_offset = np.where(has_event, rng.integers(0, span, n), 10**6)
        self.life_category = rng.integers(0, k, n)
        self.life_factor = np.where(rng.random(n) < 0.6, rng.uniform(3.0, 6.0, n), rng.uniform(0.1, 0.3, n))
        kind = rng.choice(3, size=n, p=[0.45, 0.45, 0.10])
        kind = np.where(self.promo_only, 0, np.where(self.discount_blind, 1, kind))
        self.response_type = np.array(oracle.RESPONSE_TYPES)[kind]
        self.response_shift = np.array(list(oracle.RESPONSE_SHIFT.values()))[kind] + rng.normal(0, 0.5, n)
        self.depth_threshold = rng.uniform(0.05, 0.4, n) * (1.2 - self.promo_sensitivity)
        self.shock_key = rng.integers(0, 2**62, n, dtype=np.int64)
        self.latent = rng.normal(0.0, 1.0, (n, LATENT_FACTORS))
        self.regulars = SEGMENT_REGULARS[seg] * rng.lognormal(-0.1, 0.45, n)
        self.extra_units = SEGMENT_EXTRA_UNITS[seg]
        spend = self.visit_rate * self.basket_mean
        tier = np.searchsorted(np.quantile(spend, [0.55, 0.85]), spend)
        self.loyalty_tier = np.array(LOYALTY_TIERS)[tier]
        self.customer_id = np.arange(1, n + 1, dtype=np.int64)
        # the chance a line is bought on an in-store promotion
        self.promo_line = np.clip(0.2 + 0.7 * self.promo_sensitivity, 0.0, 0.9)
        self.promo_line = np.where(self.promo_only, 0.85, np.where(self.discount_blind, 0.02, self.promo_line))
        # expected gross spend of a trip (for a sleeping dog's lost trips)
        self.trip_spend = 4.0 * (1 + self.extra_units) * (
            self.topup * oracle.TOPUP_LINES + (1 - self.topup) * self.basket_mean + 0.5 * self.regulars / 4)

    def tables(self, start: date) -> dict[str, pl.DataFrame]:
        origin = np.datetime64(start, "D")
        join = origin + self.join_offset
        day = origin + np.maximum(self.join_offset, 0)
        customers = pl.DataFrame(
            {
                "customer_id": self.customer_id,
                "segment": np.array(SEGMENTS)[self.segment],
                "home_store_id": self.home_store.astype(np.int32),
                "join_date": join,
                "loyalty_tier": self.loyalty_tier,
                "email_consent": self.email_consent,
                "day": day,
            }
        )
        life_on = self.life_offset < 10**5
        traits = pl.DataFrame(
            {
                "customer_id": self.customer_id,
                "visit_rate": self.visit_rate,
                "basket_mean": self.basket_mean,
                "topup_share": self.topup,
                "promo_sensitivity": self.promo_sensitivity,
                "brand_loyalty": self.brand_loyalty,
                "promo_only": self.promo_only,
                "discount_blind": self.discount_blind,
                "response_type": self.response_type,
                "response_shift": self.response_shift,
                "depth_threshold": self.depth_threshold,
                "extra_units": self.extra_units,
                "trip_spend": self.trip_spend,
                "shock_key": self.shock_key,
                "churn_date": origin + self.churn_offset,
                "life_on": life_on,
                "life_event_date": origin + np.where(life_on, self.life_offset, 0),
                "life_event_category": CATEGORY_ARRAY[self.life_category],
                "life_event_factor": self.life_factor,
                "day": day,
            }
        ).with_columns(
            pl.when("life_on").then(c).alias(c) for c in ("life_event_date", "life_event_category", "life_event_factor")
        ).drop("life_on")
        n, k = self.preference.shape
        brands = np.array([category_brands(c) for c in range(k)])  # (categories, brands)
        category_traits = pl.DataFrame(
            {
                "customer_id": np.repeat(self.customer_id, k),
                "category": np.tile(CATEGORY_ARRAY, n),
                "preference": self.preference.ravel(),
                "drift": self.drift.ravel(),
                "phase": self.phase.ravel(),
                "favourite_brand": brands[np.tile(np.arange(k), n), self.favourite_brand.ravel()],
                "day": np.repeat(day, k),
            }
        )
        return {
            "customers": customers,
            "sim.customer_traits": traits,
            "sim.customer_category_traits": category_traits,
        }

    def category_weights(self, customers: np.ndarray, t: int, start: date) -> np.ndarray:
        """Drifted category weights (with life events) of some customers on day ``t``."""
        day_number = np.full(len(customers), (np.datetime64(start, "D") + t - TASTE_EPOCH).astype(int))
        return taste_weights(self.preference[customers], self.drift[customers], self.phase[customers], day_number,
                             self.life_category[customers], self.life_factor[customers],
                             self.life_offset[customers] <= t)


class _Catalogue:
    """Products, sorted by (category, brand) so each group is a contiguous run."""

    def __init__(self, scale: Scale, seed: int):
        rng = _rng(seed, _PRODUCTS)
        k, b, m = len(CATEGORIES), BRANDS_PER_CATEGORY, scale.products
        weights = rng.uniform(0.6, 1.4, k)
        extra = rng.multinomial(m - k * b, weights / weights.sum())
        per_cat = extra + b  # every brand of every category has a product
        cat = np.repeat(np.arange(k), per_cat)
        first = np.r_[0, np.cumsum(per_cat)[:-1]]
        pos_in_cat = np.arange(m) - np.repeat(first, per_cat)
        brand_draw = np.where(rng.random(m) < 0.2, 0, rng.integers(1, b, m))
        brand = np.where(pos_in_cat < b, pos_in_cat, brand_draw)
        order = np.lexsort((rng.random(m), brand, cat))
        self.category, self.brand = cat[order], brand[order]
        n_sub = np.array([len(c[4]) for c in CATEGORIES])
        sub = np.floor(rng.random(m) * n_sub[self.category]).astype(int)
        sub_names = np.array([[c[4][min(i, len(c[4]) - 1)] for i in range(n_sub.max())] for c in CATEGORIES])
        brand_names = np.array([category_brands(c) for c in range(k)])
        self.brand_name = brand_names[self.category, self.brand]
        self.subcategory = sub_names[self.category, sub]
        unit = pl.Series(self.subcategory).replace_strict(SOLD_BY, default="weight").to_numpy()
        size_table = np.array([SIZES[u] for u in ("weight", "volume", "count")])
        size = size_table[np.select([unit == "volume", unit == "count"], [1, 2], 0), rng.integers(0, 10, m)]
        self.name = (
            pl.DataFrame({"b": self.brand_name, "s": self.subcategory, "z": size})
            .select(pl.concat_str(["b", "s", "z"], separator=" "))
            .to_series()
            .to_numpy()
        )
        median = np.array([c[1] for c in CATEGORIES])
        private = self.brand == 0
        self.base_price = np.round(
            np.maximum(median[self.category] * rng.lognormal(0, 0.45, m) * np.where(private, 0.8, 1.0), 0.29), 2
        )
        self.margin = np.round(
            np.clip(np.array([c[2] for c in CATEGORIES])[self.category] + rng.normal(0, 0.06, m)
                    + np.where(private, 0.08, 0.0), 0.05, 0.65), 3)
        self.shelf_life = np.maximum(
            1, np.round(np.array([c[3] for c in CATEGORIES])[self.category] * rng.uniform(0.7, 1.3, m))
        ).astype(np.int32)
        # popularity: Zipf over a random rank within the category
        rank = _rank_within(self.category, rng.random(m))
        popularity = 1.0 / (rank + 4.0) ** 1.05
        self.share_in_category = popularity / np.bincount(self.category, weights=popularity)[self.category]
        group = self.category * b + self.brand
        self.share_in_brand = popularity / np.bincount(group, weights=popularity, minlength=k * b)[group]
        self.cum_category = _grouped_cumulative(self.category, popularity)
        self.cum_brand = _grouped_cumulative(group, popularity)
        self.product_id = rng.permutation(m).astype(np.int64) + 10_001
        # v2: latent product factors, subcategory codes and complements
        self.latent = rng.normal(0.0, 1.0, (m, LATENT_FACTORS))
        self.popularity = popularity
        names, self.subcat = np.unique(self.subcategory, return_inverse=True)
        partner = np.full(m, -1, dtype=np.int64)
        for anchor, target in COMPLEMENTS.items():  # a loop over 20 subcategory pairs, not rows
            a = np.flatnonzero(self.subcategory == anchor)
            b = np.flatnonzero(self.subcategory == target)
            if len(a) and len(b):
                w = popularity[b] / popularity[b].sum()
                partner[a] = b[rng.choice(len(b), size=len(a), p=w)]
        self.partner = partner
        has = np.flatnonzero(partner >= 0)
        order = has[np.argsort(partner[has], kind="stable")]
        self.anchor_of = order  # anchors sorted by their partner
        self.anchor_start = np.searchsorted(partner[order], np.arange(m), side="left")
        self.anchor_end = np.searchsorted(partner[order], np.arange(m), side="right")
        shelf = self.shelf_life.astype(float)
        self.stock_cap = shelf  # a stock-up beyond shelf life spoils

    def sample(self, category: np.ndarray, brand: np.ndarray | None, u: np.ndarray) -> np.ndarray:
        """Product positions for draws ``u`` in [0, 1) within a category (or a category's brand)."""
        if brand is None:
            return np.searchsorted(self.cum_category, category + u, side="right")
        return np.searchsorted(self.cum_brand, category * BRANDS_PER_CATEGORY + brand + u, side="right")

    def tables(self, start: date) -> dict[str, pl.DataFrame]:
        day = np.full(len(self.product_id), np.datetime64(start, "D"))
        return {
            "products": pl.DataFrame(
                {
                    "product_id": self.product_id,
                    "name": self.name,
                    "category": CATEGORY_ARRAY[self.category],
                    "subcategory": self.subcategory,
                    "brand": self.brand_name,
                    "base_price": self.base_price,
                    "margin": self.margin,
                    "shelf_life_days": self.shelf_life,
                    "day": day,
                }
            ),
            "sim.product_traits": pl.DataFrame(
                {
                    "product_id": self.product_id,
                    "share_in_category": self.share_in_category,
                    "share_in_brand": self.share_in_brand,
                    "partner_id": pl.Series(np.where(self.partner >= 0, self.product_id[self.partner], 0)).cast(
                        pl.Int64).replace(0, None),
                    "day": day,
                }
            ),
        }


class _Tastes:
    """Each customer's own products: a set per category with latent weights, some bought regularly.

    Rows are sorted by (customer, category, product), so a (customer, category)
    group is a contiguous run and ``customer * products + product`` keys are sorted.
    """

    def __init__(self, scale: Scale, seed: int, pop: _Population, cat: _Catalogue):
        rng = _rng(seed, _TASTES)
        n, k, m = scale.customers, len(CATEGORIES), scale.products
        g = np.repeat(np.arange(n * k, dtype=np.int64), CANDIDATES_PER_CATEGORY)
        prod = cat.sample(g % k, None, rng.random(len(g)))
        self.key = np.sort((g // k) * m + prod)
        self.key = self.key[np.r_[True, self.key[1:] != self.key[:-1]]]
        del g, prod
        self.m = m
        self.cust = self.key // m
        self.prod = self.key % m
        kk = cat.category[self.prod]
        self.group = self.cust * k + kk
        score = np.zeros(len(self.key))
        for f in range(LATENT_FACTORS):  # a loop over 4 factors, not rows
            score += pop.latent[self.cust, f] * cat.latent[self.prod, f]
        match = cat.brand[self.prod] == pop.favourite_brand[self.cust, kk]
        w = np.exp(0.5 * score + 2.0 * pop.brand_loyalty[self.cust] * match)
        total = np.bincount(self.group, weights=w, minlength=n * k)
        self.weight = w / total[self.group]
        self.cum = _grouped_cumulative(self.group, w)
        p_regular = np.clip(pop.regulars[self.cust] * pop.preference[self.cust, kk] * self.weight * REGULARITY[kk],
                            0.0, 0.95)
        regular = rng.random(len(self.key)) < p_regular
        cycle = CYCLE_DAYS[kk] * rng.lognormal(0.0, 0.3, len(self.key))
        cycle = np.minimum(cycle, 1.5 * cat.shelf_life[self.prod] + 4.0)
        first_due = np.maximum(pop.join_offset[self.cust], 0) + np.floor(rng.random(len(self.key)) * cycle)
        self.cycle = np.where(regular, cycle, np.nan)
        self.first_due = np.where(regular, first_due, np.nan)
        self.due = self.first_due.copy()
        self.rep = np.flatnonzero(regular)
        customers = np.arange(n)
        self.rep_start = np.searchsorted(self.cust[self.rep], customers, side="left")
        self.rep_end = np.searchsorted(self.cust[self.rep], customers, side="right")
        groups = np.arange(n * k)
        self.group_start = np.searchsorted(self.group, groups, side="left")
        self.group_end = np.searchsorted(self.group, groups, side="right")

    def sample(self, customer: np.ndarray, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Products drawn from the customers' own sets in a category (``u`` in [0, 1))."""
        i = np.searchsorted(self.cum, customer * len(CATEGORIES) + category + u, side="right")
        return self.prod[np.minimum(i, len(self.prod) - 1)]

    def lookup(self, customer: np.ndarray, product: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, found) of (customer, product) pairs in the set."""
        key = customer * self.m + product
        i = np.minimum(np.searchsorted(self.key, key), len(self.key) - 1)
        return i, self.key[i] == key

    def table(self, pop: _Population, cat: _Catalogue, start: date) -> pl.DataFrame:
        origin = np.datetime64(start, "D")
        regular = ~np.isnan(self.cycle)
        return pl.DataFrame(
            {
                "customer_id": pop.customer_id[self.cust],
                "product_id": cat.product_id[self.prod],
                "weight": self.weight,
                "cycle_days": pl.Series(self.cycle).fill_nan(None),
                "first_due": pl.Series(np.where(regular, np.nan_to_num(self.first_due), 0)).cast(pl.Int64),
                "regular": regular,
                "day": origin + np.maximum(pop.join_offset[self.cust], 0),
            }
        ).with_columns(first_due=pl.when("regular").then(pl.lit(start) + pl.duration(days="first_due"))).drop(
            "regular")


def _offers(scale: Scale, seed: int, cat: _Catalogue, n_days: int) -> dict[str, np.ndarray]:
    """Offers starting from the warm-up before the history until ``n_days`` + lead."""
    rate = scale.active_offers / MEAN_OFFER_DAYS
    pick = (cat.share_in_category ** 0.5) * (0.5 + cat.margin)
    pick /= pick.sum()
    cap_scale = scale.customers / 50_000 * 200 / scale.active_offers
    parts = []
    for t in range(-OFFER_WARMUP_DAYS, n_days + OFFER_LEAD_DAYS):  # a loop over days, not rows
        rng = _rng(seed, _OFFERS, t)
        n = rng.poisson(rate)
        kind = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
        product = rng.choice(len(pick), size=n, p=pick)
        pct = rng.choice([10, 15, 20, 25, 30, 40, 50], size=n, p=[0.15, 0.2, 0.2, 0.15, 0.15, 0.1, 0.05])
        fixed = np.maximum(np.round(cat.base_price[product] * rng.uniform(0.1, 0.4, n), 1), 0.1)
        stores = rng.random((n, scale.stores)) < 0.3
        stores[np.arange(n), rng.integers(0, scale.stores, n)] = True
        segments = rng.random((n, len(SEGMENTS))) < 0.45
        segments[np.arange(n), rng.integers(0, len(SEGMENTS), n)] = True
        parts.append(
            dict(
                start=np.full(n, t),
                duration=rng.integers(7, 22, n),
                product=product,
                kind=kind,
                value=np.select([kind == 0, kind == 1], [pct, fixed], 1.0).astype(float),
                store_scoped=rng.random(n) < 0.3,
                stores=stores,
                segment_scoped=rng.random(n) < 0.25,
                segments=segments,
                cap=np.where(rng.random(n) < 0.35,
                             np.maximum(2, np.round(rng.uniform(3, 24, n) * cap_scale)), -1).astype(int),
            )
        )
    o = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    o["end"] = o["start"] + o["duration"] - 1
    keep = o["end"] >= 0
    o = {key: v[keep] for key, v in o.items()}
    o["stores"] = np.where(o["store_scoped"][:, None], o["stores"], True)
    o["segments"] = np.where(o["segment_scoped"][:, None], o["segments"], True)
    o["store_scoped"] &= ~o["stores"].all(axis=1)
    o["segment_scoped"] &= ~o["segments"].all(axis=1)
    o["depth"] = oracle.discount_depth(
        np.array(["percentage", "fixed_amount", "bogo"])[o["kind"]], o["value"], cat.base_price[o["product"]]
    )
    o["offer_id"] = np.arange(1, len(o["start"]) + 1, dtype=np.int64)
    return o


def _scope_strings(ids: np.ndarray, mask: np.ndarray, scoped: np.ndarray, labels: np.ndarray) -> pl.Series:
    """'3,17,22'-style scope strings (NULL when unscoped), built set-wise."""
    rows, cols = np.nonzero(mask & scoped[:, None])
    joined = (
        pl.DataFrame({"row": rows, "label": labels[cols].astype(str)})
        .group_by("row", maintain_order=True)
        .agg(pl.col("label").str.join(","))
    )
    out = pl.DataFrame({"row": np.arange(len(ids))}).join(joined, on="row", how="left")
    return out.sort("row")["label"]


def _holdout(scale: Scale, seed: int, pop: _Population, n_blocks: int, share: float) -> np.ndarray:
    """(blocks, customers): is the customer in the holdout during each 4-week block.

    Only customers who have joined by a block's first day are drawn (and
    listed in experiment_assignments); later joiners are treated until the next block.
    """
    out = np.zeros((max(n_blocks, 1), scale.customers), dtype=bool)
    for b in range(n_blocks):  # a loop over 4-week blocks, not rows
        joined = pop.join_offset <= b * HOLDOUT_BLOCK_DAYS
        out[b] = (_rng(seed, _HOLDOUT, b).random(scale.customers) < share) & joined
    return out


def _assignments(pop: _Population, holdout: np.ndarray, n_days: int, start: date) -> pl.DataFrame:
    """experiment_assignments: every customer who has joined by a block's first day, per 4-week block."""
    origin = np.datetime64(start, "D")
    parts = []
    for b in range(-(-n_days // HOLDOUT_BLOCK_DAYS)):  # a loop over blocks, not rows
        first, last = b * HOLDOUT_BLOCK_DAYS, (b + 1) * HOLDOUT_BLOCK_DAYS - 1
        c = np.flatnonzero(pop.join_offset <= first)
        parts.append(pl.DataFrame({
            "customer_id": pop.customer_id[c],
            "arm": np.where(holdout[b, c], "holdout", "treatment"),
            "from_date": np.full(len(c), origin + first),
            "to_date": np.full(len(c), origin + last),
        }))
    frame = pl.concat(parts) if parts else pl.DataFrame(schema={"customer_id": pl.Int64, "arm": pl.String,
                                                              "from_date": pl.Date, "to_date": pl.Date})
    return frame.with_columns(day=pl.col("from_date"))


def _impressions(scale: Scale, seed: int, pop: _Population, cat: _Catalogue, tastes: _Tastes,
                 offers: dict[str, np.ndarray], n_days: int, holdout: np.ndarray, exploration: float) -> dict[str, np.ndarray]:
    """The legacy policy with epsilon-exploration: lists of 5-10 offers for the customers it reaches.

    The legacy ranks a customer's eligible offers by segment taste, the
    customer's category taste and depth (deterministically) and keeps the
    top k. When at least 2k offers are eligible, each slot is, with
    probability ``exploration``, given to an offer drawn uniformly without
    replacement from the eligible offers outside the legacy's list. So the
    probability of showing an offer in a slot is ``1 - exploration`` for the
    legacy's offer of that slot and ``exploration / (N - k)`` for any other
    eligible offer (``propensity``); without exploration it is 1.
    """
    reach = WEEKLY_REACH / 7.0 * np.where(pop.email_consent, 1.25, 0.6)
    out = []
    offer_cat = cat.category[offers["product"]]
    for t in range(n_days):  # a loop over days, not rows
        rng = _rng(seed, _IMPRESSIONS, t)
        u = rng.random(scale.customers)
        c = np.flatnonzero((pop.join_offset < t) & (u < reach) & ~holdout[t // HOLDOUT_BLOCK_DAYS])
        live = np.flatnonzero((offers["start"] <= t) & (offers["end"] >= t))
        if len(c) == 0 or len(live) == 0:
            continue
        k = rng.integers(5, 11, len(c))
        channel = rng.choice(len(CHANNELS), size=len(c), p=CHANNEL_SHARES)
        channel = np.where((channel == 0) & ~pop.email_consent[c], 1, channel)  # email needs consent
        pc, po = np.repeat(c, len(live)), np.tile(live, len(c))
        owner = np.repeat(np.arange(len(c)), len(live))
        ok = offers["stores"][po, pop.home_store[pc] - 1] & offers["segments"][po, pop.segment[pc]]
        pc, po, owner = pc[ok], po[ok], owner[ok]
        oc = offer_cat[po]
        row, found = tastes.lookup(pc, offers["product"][po])
        own = np.where(found, tastes.weight[row], 0.0)
        regular = found & ~np.isnan(tastes.cycle[row])
        # the legacy targets what the customer already buys (the taste set stands in for its purchase history)
        score = (np.log(SEGMENT_CATEGORY_PRIOR[pop.segment[pc], oc]) + np.log(0.4 + offers["depth"][po])
                 + np.log(pop.preference[pc, oc] * len(CATEGORIES)) + np.log(own + 0.02) + 1.5 * regular)
        rank = _rank_within(owner, score)
        n_eligible = np.bincount(owner, minlength=len(c))
        k_eff = np.minimum(k, n_eligible)
        explorable = n_eligible >= 2 * k
        legacy = rank < k_eff[owner]
        explored = legacy & (rng.random(len(pc)) < exploration) & explorable[owner]
        # explored slots, in slot order, take the non-legacy offers in a random order
        slot_j = _rank_within(owner[explored], -rank[explored].astype(float))
        nl = ~legacy
        nl_rank = _rank_within(owner[nl], rng.random(nl.sum()))
        nl_key = owner[nl] * 1_000_000 + nl_rank
        want = owner[explored] * 1_000_000 + slot_j
        order = np.argsort(nl_key)
        pick = np.flatnonzero(nl)[order[np.searchsorted(nl_key[order], want)]]
        shown_legacy = np.flatnonzero(legacy & ~explored)
        rows = np.r_[shown_legacy, pick]
        position = np.r_[rank[shown_legacy], rank[explored]] + 1
        o = owner[rows]
        propensity = np.where(
            np.arange(len(rows)) < len(shown_legacy),
            np.where(explorable[o], 1.0 - exploration, 1.0),
            exploration / np.maximum(n_eligible[o] - k_eff[o], 1),
        )
        n = len(rows)
        out.append(
            dict(
                t=np.full(n, t),
                customer=pc[rows],
                offer=po[rows],
                position=position,
                propensity=propensity,
                exploration=np.arange(n) >= len(shown_legacy),
                seconds=rng.integers(6 * 3600, 21 * 3600, len(c))[o],
                channel=channel[o],
                u_notice=rng.random(n),
                u_persuade=rng.random(n),
                delay=rng.choice(len(REDEMPTION_DELAY), size=n, p=REDEMPTION_DELAY),
            )
        )
    keys = ("t", "customer", "offer", "position", "propensity", "exploration", "seconds", "channel", "u_notice",
            "u_persuade", "delay")
    if not out:
        return {key: np.zeros(0, dtype=np.int64) for key in keys}
    imp = {key: np.concatenate([o[key] for o in out]) for key in keys}
    order = np.lexsort((imp["position"], imp["customer"], imp["t"]))
    imp = {key: v[order] for key, v in imp.items()}
    imp["fatigue_offer"] = _prior_counts(imp["customer"] * len(offers["offer_id"]) + imp["offer"], imp["t"])
    imp["fatigue_category"] = _prior_counts(imp["customer"] * len(CATEGORIES) + offer_cat[imp["offer"]], imp["t"])
    return imp


def _prior_counts(group: np.ndarray, t: np.ndarray, window: int = FATIGUE_DAYS) -> np.ndarray:
    """Rows of the same group on the ``window`` days before each row's day (same day excluded)."""
    key = group.astype(np.int64) * 100_000 + t
    order = np.argsort(key, kind="stable")
    sk = key[order]
    counts = np.empty(len(key), dtype=np.int64)
    counts[order] = np.searchsorted(sk, sk, side="left") - np.searchsorted(sk, sk - window, side="left")
    return counts


def _shock_arrays(shock: Shock | None, days: np.ndarray) -> tuple[np.ndarray, ...]:
    on = np.zeros(len(days), dtype=bool)
    if shock is not None:
        on = (days >= np.datetime64(shock.start, "D")) & (days < np.datetime64(shock.end, "D"))
    visits = np.where(on, shock.visits if shock else 1.0, 1.0)
    basket = np.where(on, shock.basket if shock else 1.0, 1.0)
    promo = np.where(on, shock.promo if shock else 0.0, 0.0)
    redemption = np.where(on, shock.redemption if shock else 0.0, 0.0)
    return visits, basket, promo, redemption


class _Calendar:
    """Per-day multipliers of the simulated days and the week after them."""

    def __init__(self, start: date, n_days: int, shock: Shock | None):
        days = _days(start, n_days + oracle.WEEK)
        self.visits = calendar.visit_multiplier(days)
        self.categories = calendar.category_multiplier(days)
        self.promo = calendar.promo_boost(days)
        self.month_end = month_end(days)
        self.day_number = (days - TASTE_EPOCH).astype(np.int64)
        self.s_visits, self.s_basket, self.s_promo, self.s_redemption = _shock_arrays(shock, days)


def line_probability(pi_own: np.ndarray, weight: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Chance an exploratory line is a product: its category's chance x (own set or popularity).

    ``share`` is the product's chance among popularity picks (brand loyalty included,
    :func:`metro_assets.simulation.oracle.popular_share`).
    """
    return pi_own * ((1.0 - oracle.NOVELTY) * weight[:, None] + oracle.NOVELTY * share[:, None])


def _impression_truth(pop: _Population, cat: _Catalogue, tastes: _Tastes, offers: dict[str, np.ndarray],
                      cal: _Calendar, start: date, t: int, c: np.ndarray, o: np.ndarray,
                      fatigue_offer: np.ndarray, fatigue_category: np.ndarray,
                      due: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The oracle's figures for (customer, offer) pairs shown on day ``t``, from the simulator's state.

    ``due`` is the stock state to read (a :class:`WorldState`'s; default: the tastes' own).
    """
    due_all = tastes.due if due is None else due
    p = offers["product"][o]
    k = cat.category[p]
    w = np.arange(oracle.WEEK)
    day = t + w
    active = (pop.join_offset[c][:, None] <= day[None, :]) & (day[None, :] < pop.churn_offset[c][:, None])
    pv = np.where(active, 1.0 - np.exp(-pop.visit_rate[c][:, None] * (cal.visits[day] * cal.s_visits[day])[None, :]),
                  0.0)
    uc, inv = _unique(c)
    weights = pop.category_weights(uc, t, start)  # (customers, categories)
    z = weights @ cal.categories[day].T            # (customers, 7)
    pi = lambda kk, owner: weights[owner, kk][:, None] * cal.categories[day][:, kk].T / z[owner]  # noqa: E731
    row, found = tastes.lookup(c, p)
    own = np.where(found, tastes.weight[row], 0.0)
    share = oracle.popular_share(pop.favourite_brand[c, k] == cat.brand[p], pop.brand_loyalty[c],
                                 cat.share_in_category[p], cat.share_in_brand[p])
    line = line_probability(pi(k, inv), own, share)
    # complements: anchors of the product bring it along
    a_owner, a_idx = _expand(cat.anchor_start[p], cat.anchor_end[p])
    if len(a_owner):
        anchor = cat.anchor_of[a_idx]
        arow, afound = tastes.lookup(c[a_owner], anchor)
        ak = cat.category[anchor]
        a_share = oracle.popular_share(pop.favourite_brand[c[a_owner], ak] == cat.brand[anchor],
                                       pop.brand_loyalty[c[a_owner]], cat.share_in_category[anchor],
                                       cat.share_in_brand[anchor])
        a_line = line_probability(pi(ak, inv[a_owner]), np.where(afound, tastes.weight[arow], 0.0), a_share)
        line += oracle.COMPLEMENT * np.vstack([np.bincount(a_owner, weights=a_line[:, j], minlength=len(c))
                                               for j in range(oracle.WEEK)]).T
    due_rel = np.where(found, due_all[row] - t, np.nan)
    depth = offers["depth"][o]
    kind = offers["kind"][o]
    x = {
        "pv": pv,
        "due_rel": due_rel,
        "line_prob": line,
        "topup": pop.topup[c],
        "lines": pop.basket_mean[c][:, None] * cal.s_basket[day][None, :],
        "window": np.minimum(oracle.WEEK, offers["end"][o] - t + 1),
        "depth": depth,
        "depth_threshold": pop.depth_threshold[c],
        "promo_sensitivity": pop.promo_sensitivity[c],
        "response_shift": pop.response_shift[c],
        "response_type": pop.response_type[c],
        "brand_match": pop.favourite_brand[c, k] == cat.brand[p],
        "brand_loyalty": pop.brand_loyalty[c],
        "month_end": np.full(len(c), cal.month_end[t]),
        "fatigue_offer": fatigue_offer,
        "fatigue_category": fatigue_category,
        "shock": oracle.daily_shock(pop.shock_key[c], np.full(len(c), cal.day_number[t])) + cal.s_redemption[t],
        "trip_spend": pop.trip_spend[c],
        "base_price": cat.base_price[p],
        "units": np.where(kind == 2, 1.0 + offers["value"][o], 1.0),
    }
    return oracle.evaluate(x)


def _offer_discount(kind: np.ndarray, value: np.ndarray, price: np.ndarray, qty: np.ndarray) -> np.ndarray:
    """Money an offer takes off a line (bogo: one free item)."""
    return np.round(np.select([kind == 0, kind == 1], [price * qty * value / 100.0, np.minimum(value, price * qty)],
                              price), 2)


@dataclass
class WorldState:
    """What the world carries from one day to the next (a policy run works on its own copy).

    ``due`` is each taste row's day the household stock runs out (NaN: not a
    regular product); ``pend`` the noticed offers still waiting for their trip.
    """

    deter_until: np.ndarray
    used: np.ndarray
    pend: dict[str, np.ndarray]
    due: np.ndarray

    @classmethod
    def initial(cls, n_customers: int, n_offers: int, tastes: "_Tastes") -> "WorldState":
        pend = {key: np.zeros(0, dtype=np.int64) for key in ("c", "p", "offer", "until", "pday", "shown", "t0")}
        pend["persuaded"] = np.zeros(0, dtype=bool)
        return cls(np.full(n_customers, -1), np.zeros(n_offers, dtype=np.int64), pend, tastes.due)

    def copy(self) -> "WorldState":
        return WorldState(self.deter_until.copy(), self.used.copy(), {k: v.copy() for k, v in self.pend.items()},
                          self.due.copy())


def day_step(scale: Scale, seed: int, pop: _Population, cat: _Catalogue, tastes: _Tastes,
             offers: dict[str, np.ndarray], cal: _Calendar, start: date, state: WorldState, t: int,
             imp: dict[str, np.ndarray]) -> tuple[dict, dict, dict, dict]:
    """One day of the world: the day's impressions ``imp`` answered, trips, lines, redemptions.

    ``state`` is updated in place. ``imp`` holds the day's shown offers
    (``customer``, ``offer``, ``position``, ``channel``, ``seconds``,
    ``u_notice``, ``u_persuade``, ``delay``, ``fatigue_offer``,
    ``fatigue_category``), in any policy's choice. Returns the day's orders,
    lines, redemptions and the truth of each impression (empty when none).
    """
    n, m, k_cat = scale.customers, scale.products, len(CATEGORIES)
    eq = 1.0 + pop.extra_units
    rng = _rng(seed, _ORDERS, t)
    deter_until, used, pend, due = state.deter_until, state.used, state.pend, state.due
    f = {}
    # 1. today's impressions: truth, noticing, persuasion
    ic, io = imp["customer"], imp["offer"]
    if len(ic):
        f = _impression_truth(pop, cat, tastes, offers, cal, start, t, ic, io, imp["fatigue_offer"],
                              imp["fatigue_category"], due=due)
        notice = imp["u_notice"] < (oracle.position_attention(imp["position"])
                                    * oracle.CHANNEL_ATTENTION[imp["channel"]])
        persuaded = imp["u_persuade"] < f["p_persuade"]
        dogs = notice & (pop.response_type[ic] == "sleeping_dog")
        deter_until[ic[dogs]] = t + oracle.WEEK - 1
        window = np.minimum(oracle.WEEK, offers["end"][io] - t + 1)
        new = {"c": ic, "p": offers["product"][io], "offer": io, "until": t + window - 1,
               "pday": t + np.minimum(imp["delay"], window - 1), "shown": imp["seconds"],
               "t0": np.full(len(ic), t), "persuaded": persuaded}
        pend = {key: np.r_[pend[key], new[key][notice]] for key in pend}
    # 2. visits: ordinary ones, fewer for deterred sleeping dogs, plus the trips persuaded customers make
    active = (pop.join_offset <= t) & (t < pop.churn_offset)
    rate = pop.visit_rate * cal.visits[t] * cal.s_visits[t] * np.where(deter_until >= t,
                                                                      1.0 - oracle.DETERRENCE, 1.0)
    visit = active & (rng.random(n) < 1.0 - np.exp(-rate))
    forced = pend["persuaded"] & (pend["pday"] == t)
    visit[pend["c"][forced]] |= active[pend["c"][forced]]
    v = np.flatnonzero(visit)
    top = rng.random(len(v)) < pop.topup[v]
    # 3a. regular products whose stock runs out
    owner, ri = _expand(tastes.rep_start[v], tastes.rep_end[v])
    row = tastes.rep[ri]
    h = np.where(top[owner], oracle.H_TOPUP, oracle.H_BIG) * oracle.stock_pressure(due[row] - t)
    buy = rng.random(len(row)) < h
    due_c, due_p = v[owner[buy]], tastes.prod[row[buy]]
    # 3b. exploratory lines from the drifting category tastes and the customer's own products
    lam = np.where(top, oracle.TOPUP_LINES, pop.basket_mean[v] * cal.s_basket[t])
    cnt = rng.poisson(lam * rng.gamma(oracle.BASKET_SHAPE, 1.0 / oracle.BASKET_SHAPE, len(v)))
    lo = np.repeat(np.arange(len(v)), cnt)
    lc = v[lo]
    cw = np.cumsum(pop.category_weights(v, t, start) * cal.categories[t], axis=1)
    category = (rng.random(len(lc))[:, None] * cw[lo, -1:] > cw[lo]).sum(axis=1)
    u = rng.random(len(lc))
    novel = rng.random(len(lc)) < oracle.NOVELTY
    loyal = rng.random(len(lc)) < pop.brand_loyalty[lc]
    popular = np.where(loyal, cat.sample(category, pop.favourite_brand[lc, category], u), cat.sample(category, None, u))
    ep = np.where(novel, popular, tastes.sample(lc, category, u))
    partner = cat.partner[ep]
    comp = (partner >= 0) & (rng.random(len(lc)) < oracle.COMPLEMENT)
    # 3c. impulse picks of a regular product are thinned by its stock (a full cupboard buys none)
    xc, xp = np.r_[lc, lc[comp]], np.r_[ep, partner[comp]]
    xrow, xfound = tastes.lookup(xc, xp)
    gate = np.where(xfound, oracle.stock_pressure(due[xrow] - t), 0.0)  # NaN due (not regular) -> 0
    regular_pick = xfound & ~np.isnan(tastes.cycle[xrow])
    keep_pick = ~regular_pick | (rng.random(len(xc)) < gate)
    # 3d. one line per (customer, product), quantities summed
    c_all = np.r_[due_c, xc[keep_pick]]
    p_all = np.r_[due_p, xp[keep_pick]]
    q_all = 1 + rng.poisson(pop.extra_units[c_all])
    key, inv = _unique(c_all * m + p_all)
    qty = np.bincount(inv, weights=q_all).astype(np.int64)
    # 4. redemptions inside today's trips: bought anyway, or added because persuaded
    live = pend["until"] >= t
    pkey = pend["c"] * m + pend["p"]
    pos = np.minimum(np.searchsorted(key, pkey), max(len(key) - 1, 0))
    bought = live & (key[pos] == pkey) if len(key) else np.zeros(len(pkey), bool)
    cand = np.flatnonzero(bought | (live & pend["persuaded"] & (pend["pday"] <= t) & visit[pend["c"]]))
    cand = np.sort(cand[_first_of(pend["c"][cand] * len(used) + pend["offer"][cand])])
    cand = np.sort(cand[_first_of(pkey[cand])])  # one offer per line
    nth = _rank_within(pend["offer"][cand], -cand.astype(float))
    cap = offers["cap"][pend["offer"][cand]]
    cand = cand[(cap < 0) | (used[pend["offer"][cand]] + nth < cap)]
    np.add.at(used, pend["offer"][cand], 1)
    rc, rp, ro = pend["c"][cand], pend["p"][cand], pend["offer"][cand]
    r_shown = np.where(pend["t0"][cand] == t, pend["shown"][cand], -1)
    want = rc * m + rp  # distinct: one offer per line
    add = np.sort(want[~_member(want, key)])
    if len(add):
        key = np.r_[key, add]
        qty = np.r_[qty, np.zeros(len(add), np.int64)]
        order = np.argsort(key)
        key, qty = key[order], qty[order]
    rpos = np.searchsorted(key, rc * m + rp)
    kind = offers["kind"][ro]
    # a promoted purchase stocks up: a unit more than usual (bogo: the free ones)
    typical = np.round(eq[rc]).astype(np.int64)
    qty[rpos] = np.maximum(qty[rpos], typical) + np.where(kind == 2, offers["value"][ro], 1).astype(np.int64)
    done = _member(pend["c"] * len(used) + pend["offer"], np.sort(rc * len(used) + ro))
    keep = ~done & (pend["until"] > t) & ~(pend["persuaded"] & (pend["pday"] <= t))
    pend = {kk: vv[keep] for kk, vv in pend.items()}
    state.pend = pend
    # 5. lines, promotions and the orders of the day
    lcust, lprod = key // m, key % m
    price = np.round(cat.base_price[lprod] * rng.uniform(0.95, 1.05, len(key)), 2)
    promo = rng.random(len(key)) < np.clip(pop.promo_line[lcust] + cal.promo[t] + cal.s_promo[t], 0, 0.95)
    discount = np.where(promo, np.round(qty * price * rng.uniform(*PROMO_DEPTH, len(key)), 2), 0.0)
    red_offer = np.full(len(key), -1)
    red_offer[rpos] = ro
    discount[rpos] = _offer_discount(kind, offers["value"][ro], price[rpos], qty[rpos])
    promo[rpos] = True
    oc = lcust[np.r_[True, lcust[1:] != lcust[:-1]]] if len(lcust) else lcust
    seconds = rng.integers(7 * 3600, 22 * 3600, len(oc))
    at = np.searchsorted(oc, rc)  # a redemption shown today happens after it was shown
    np.maximum.at(seconds, at, np.where(r_shown >= 0, r_shown + 600, 0))
    seconds = np.minimum(seconds, 86_399)
    orders_day = dict(t=np.full(len(oc), t), customer=oc, seconds=seconds,
                      store=np.where(rng.random(len(oc)) < 0.9, pop.home_store[oc],
                                     rng.integers(1, scale.stores + 1, len(oc))))
    lines_day = dict(t=np.full(len(key), t), local=np.searchsorted(oc, lcust), customer=lcust, product=lprod,
                     qty=qty, price=price, promo=promo, discount=discount, offer=red_offer)
    reds_day = dict(t=np.full(len(rc), t), local=np.searchsorted(oc, rc), customer=rc, offer=ro)
    # 6. stock: purchases refill regular products; a redemption covers the need of its substitutes
    row, found = tastes.lookup(lcust, lprod)
    regular = found & ~np.isnan(tastes.cycle[row])
    r = row[regular]
    cyc = tastes.cycle[r]
    due[r] = t + np.minimum(cyc * qty[regular] / eq[lcust[regular]], np.maximum(cyc, cat.stock_cap[lprod[regular]]))
    if len(rc):
        g = rc * k_cat + cat.category[rp]
        so, si = _expand(tastes.group_start[g], tastes.group_end[g])
        hit = ((cat.subcat[tastes.prod[si]] == cat.subcat[rp[so]]) & (tastes.prod[si] != rp[so])
               & ~np.isnan(tastes.cycle[si]))
        si = si[hit]
        due[si] = np.maximum(due[si], t + tastes.cycle[si])
    return orders_day, lines_day, reds_day, f


#: Days of events a simulation writes at a time (:func:`simulate_chunks`): bounds the rows held in memory.
CHUNK_DAYS = 7


def _world(scale: Scale, seed: int, start: date, n_days: int, shock: Shock | None, exploration: float,
           holdout_share: float):
    """Everything the days are simulated from: population, catalogue, tastes, offers, holdout, impressions."""
    pop = _Population(scale, seed)
    cat = _Catalogue(scale, seed)
    tastes = _Tastes(scale, seed, pop, cat)
    offers = _offers(scale, seed, cat, n_days)
    n_blocks = -(-n_days // HOLDOUT_BLOCK_DAYS)
    holdout = _holdout(scale, seed, pop, n_blocks, holdout_share)
    imp = _impressions(scale, seed, pop, cat, tastes, offers, n_days, holdout, exploration)
    cal = _Calendar(start, n_days, shock)
    return pop, cat, tastes, offers, holdout, imp, cal


def simulate_chunks(scale: Scale, seed: int, start: date, end: date, shock: Shock | None = None,
                    exploration: float = 0.10, holdout_share: float = 0.10,
                    chunk_days: int = CHUNK_DAYS) -> Iterator[dict[str, pl.DataFrame]]:
    """:func:`simulate`'s tables in pieces, so the events of a long history are never all in memory.

    The first piece holds the dimension and hidden-trait tables (customers,
    products, offers, experiment_assignments, ``sim.*`` traits); each next one
    the events (orders, order_items, impressions, redemptions,
    ``sim.impression_truth``) of ``chunk_days`` consecutive days. The pieces
    hold exactly :func:`simulate`'s rows: ids count on across pieces (orders
    are numbered by time, so a day's orders follow the previous day's), and
    the days are simulated in one pass whatever ``chunk_days`` is.

    Why days, not customer blocks: customers share the offers' redemption
    caps (a redemption uses up a cap others then miss) and every draw of a day
    is one stream over all customers, so a customer block would change rows.
    """
    n_days = max((end - start).days, 0)
    pop, cat, tastes, offers, holdout, imp, cal = _world(scale, seed, start, n_days, shock, exploration,
                                                         holdout_share)
    yield {
        **pop.tables(start),
        **cat.tables(start),
        "sim.customer_products": tastes.table(pop, cat, start),
        "offers": _offer_frame(scale, offers, cat, start),
        "experiment_assignments": _assignments(pop, holdout, n_days, start),
    }
    imp_frame = _impression_frame(imp, pop, offers, start)
    state = WorldState.initial(scale.customers, len(offers["offer_id"]), tastes)
    day_first = np.searchsorted(imp["t"], np.arange(n_days + 1))
    ids = {"order": 0, "item": 0, "redemption": 0}  # rows numbered so far
    parts: list[tuple[dict, dict, dict, dict]] = []
    first = 0
    for t in range(n_days):  # a loop over days (stock carries from one day to the next), not rows
        s = slice(day_first[t], day_first[t + 1])
        parts.append(day_step(scale, seed, pop, cat, tastes, offers, cal, start, state, t,
                              {key: v[s] for key, v in imp.items()}))
        if t + 1 - first == chunk_days or t + 1 == n_days:
            rows = slice(day_first[first], day_first[t + 1])
            yield _event_frames(parts, first, t + 1 - first, ids, pop, cat, offers, imp, rows, imp_frame, start,
                                scale.products)
            parts, first = [], t + 1
    if n_days == 0:
        yield _event_frames([], 0, 0, ids, pop, cat, offers, imp, slice(0, 0), imp_frame, start, scale.products)


def _event_frames(parts: list, first: int, n_days: int, ids: dict, pop: _Population, cat: _Catalogue,
                  offers: dict[str, np.ndarray], imp: dict[str, np.ndarray], rows: slice, imp_frame: pl.DataFrame,
                  start: date, n_products: int) -> dict[str, pl.DataFrame]:
    """The event tables of the days [first, first + n_days) from their ``day_step`` outputs; ``ids`` moves on."""

    def cat_days(index, keys):
        if not parts:
            return {key: np.zeros(0, dtype=np.int64) for key in keys}
        return {key: np.concatenate([p[index][key] for p in parts]) for key in keys}

    o = cat_days(0, ("t", "customer", "seconds", "store"))
    li = cat_days(1, ("t", "local", "customer", "product", "qty", "price", "promo", "discount"))
    r = cat_days(2, ("t", "local", "customer", "offer"))
    origin = np.datetime64(start, "s")
    # orders are numbered by time, then customer; lines and redemptions find theirs by (day, customer)
    day_first = np.searchsorted(o["t"], np.arange(first, first + n_days + 1))
    at = o["t"] * 86400 + o["seconds"]
    by_time = np.lexsort((o["customer"], at))
    order_id = np.empty(len(at), dtype=np.int64)
    order_id[by_time] = np.arange(ids["order"] + 1, ids["order"] + len(at) + 1)
    line_order = day_first[li["t"] - first] + li["local"]
    line_sort = np.argsort(order_id[line_order] * n_products + li["product"], kind="stable")
    gross = li["qty"] * li["price"] - li["discount"]
    stamp = lambda sec: (origin + sec.astype("timedelta64[s]")).astype("datetime64[us]")  # noqa: E731
    orders = pl.DataFrame({
        "order_id": order_id[by_time],
        "customer_id": pop.customer_id[o["customer"][by_time]],
        "store_id": o["store"][by_time].astype(np.int32),
        "order_timestamp": stamp(at[by_time]),
        "total_amount": np.round(np.bincount(line_order, weights=gross, minlength=len(at)), 2)[by_time],
        "num_items": np.bincount(line_order, minlength=len(at))[by_time].astype(np.int32),
        "day": np.datetime64(start, "D") + o["t"][by_time],
    })
    ls = line_sort
    items = pl.DataFrame({
        "order_item_id": np.arange(ids["item"] + 1, ids["item"] + len(ls) + 1, dtype=np.int64),
        "order_id": order_id[line_order[ls]],
        "product_id": cat.product_id[li["product"][ls]],
        "quantity": li["qty"][ls].astype(np.int32),
        "unit_price": li["price"][ls],
        "is_promo": li["promo"][ls].astype(bool),
        "discount_amount": li["discount"][ls],
        "day": np.datetime64(start, "D") + li["t"][ls],
    })
    red_order = day_first[r["t"] - first] + r["local"]
    red_sort = np.lexsort((r["offer"], r["customer"], at[red_order]))
    redemptions = pl.DataFrame({
        "redemption_id": np.arange(ids["redemption"] + 1, ids["redemption"] + len(red_sort) + 1, dtype=np.int64),
        "customer_id": pop.customer_id[r["customer"][red_sort]],
        "offer_id": offers["offer_id"][r["offer"][red_sort]],
        "order_id": order_id[red_order[red_sort]],
        "redeemed_timestamp": stamp(at[red_order[red_sort]]),
        "day": np.datetime64(start, "D") + r["t"][red_sort],
    })
    ids["order"] += len(at)
    ids["item"] += len(ls)
    ids["redemption"] += len(red_sort)
    # the truth of each impression shown on these days (zero where a day_step had none)
    n_imp = rows.stop - rows.start
    truth = {key: np.zeros(n_imp) for key in ("p_redeem", "p_base", "uplift", "spend_effect")}
    offset = np.searchsorted(imp["t"][rows], np.arange(first, first + n_days + 1))
    for d, (_, _, _, f) in enumerate(parts):  # a loop over days, not rows
        for key in truth if f else ():
            truth[key][offset[d]:offset[d + 1]] = f[key]
    impressions = imp_frame.slice(rows.start, n_imp)
    impression_truth = pl.DataFrame({
        "customer_id": pop.customer_id[imp["customer"][rows]],
        "offer_id": offers["offer_id"][imp["offer"][rows]],
        "position": imp["position"][rows].astype(np.int32),
        **truth,
    }).with_columns(day=impressions["day"])
    return {"orders": orders, "order_items": items, "impressions": impressions, "redemptions": redemptions,
            "sim.impression_truth": impression_truth}


def _impression_frame(imp: dict[str, np.ndarray], pop: _Population, offers: dict[str, np.ndarray],
                      start: date) -> pl.DataFrame:
    """impressions: every impression of the history, numbered in (day, customer, position) order."""
    origin = np.datetime64(start, "s")
    return pl.DataFrame(
        {
            "customer_id": pop.customer_id[imp["customer"]],
            "offer_id": offers["offer_id"][imp["offer"]],
            "shown_at": imp["t"] * 86400 + imp["seconds"],
            "channel": np.array(CHANNELS)[imp["channel"]] if len(imp["t"]) else np.array([], dtype=str),
            "position": imp["position"].astype(np.int32),
            "propensity": imp["propensity"].astype(float),
            "is_exploration": imp["exploration"].astype(bool),
        }
    ).with_columns(
        impression_id=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        shown_timestamp=pl.lit(origin) + pl.duration(seconds=pl.col("shown_at")),
    ).with_columns(day=pl.col("shown_timestamp").dt.date()).select(
        "impression_id", "customer_id", "offer_id", "shown_timestamp", "channel", "position", "propensity",
        "is_exploration", "day")


def _offer_frame(scale: Scale, offers: dict[str, np.ndarray], cat: _Catalogue, start: date) -> pl.DataFrame:
    """offers: each in the partition of the day it was published (a week before it starts)."""
    offer_start = np.datetime64(start, "D") + offers["start"]
    return pl.DataFrame(
        {
            "offer_id": offers["offer_id"],
            "product_id": cat.product_id[offers["product"]],
            "discount_type": np.array(["percentage", "fixed_amount", "bogo"])[offers["kind"]],
            "discount_value": offers["value"],
            "start_date": offer_start,
            "end_date": np.datetime64(start, "D") + offers["end"],
            "store_scope": _scope_strings(offers["offer_id"], offers["stores"], offers["store_scoped"],
                                          np.arange(1, scale.stores + 1)),
            "segment_scope": _scope_strings(offers["offer_id"], offers["segments"], offers["segment_scoped"],
                                            np.array(SEGMENTS)),
            "max_redemptions": pl.Series(np.where(offers["cap"] > 0, offers["cap"], 0)).cast(pl.Int32),
            "day": np.maximum(offer_start - OFFER_LEAD_DAYS, np.datetime64(start, "D")),
        }
    ).with_columns(max_redemptions=pl.when(pl.col("max_redemptions") > 0).then("max_redemptions"))


def simulate(scale: Scale, seed: int, start: date, end: date, shock: Shock | None = None,
             exploration: float = 0.10, holdout_share: float = 0.10) -> dict[str, pl.DataFrame]:
    """Simulate the retailer from ``start`` (first day of the history) to ``end`` (exclusive).

    Parameters
    ----------
    scale : Scale
        Population and catalogue sizes.
    seed : int
        The world's seed: the same seed gives the same rows.
    start, end : date
        The simulated days. Rows of a day do not depend on ``end``.
    shock : Shock, optional
        A behaviour change on some days (scenarios).
    exploration : float
        Share of the legacy policy's slots filled at random (METRO_EXPLORATION).
    holdout_share : float
        Share of customers who see no offers, re-drawn every 4 weeks (METRO_HOLDOUT_SHARE).

    Returns
    -------
    dict of str to polars.DataFrame
        The raw tables, the hidden ``sim.*`` truth tables and
        ``sim.impression_truth`` (the oracle's figures of every impression, for
        tests), every row with its ``day``. Callers keep the days they need.
        (:func:`simulate_chunks` gives the same rows a week at a time.)
    """
    n_days = max((end - start).days, 0)
    dimensions, events = simulate_chunks(scale, seed, start, end, shock, exploration, holdout_share,
                                         chunk_days=max(n_days, 1))
    return {**dimensions, **events}


def window(tables: dict[str, pl.DataFrame], start: date, end: date) -> dict[str, pl.DataFrame]:
    """Keep the rows whose ``day`` is in [start, end)."""
    return {name: t.filter((pl.col("day") >= start) & (pl.col("day") < end)) for name, t in tables.items()}
