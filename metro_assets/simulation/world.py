"""The retail simulator: a deterministic world of customers, products, offers
and the events they produce, with no Dagster inside.

Determinism: every random draw comes from a stream seeded by
``(seed, stream, day)``, and a run always simulates from the first day of the
history, so the rows of a day never depend on the range a run covers.
Events are generated causally: regular shopping first, then the legacy
targeting policy's impressions, then redemptions drawn from the oracle
(:mod:`metro_assets.simulation.oracle`), which create their own orders.

Examples
--------
>>> from datetime import date
>>> from metro_assets.settings import SCALES
>>> tables = simulate(SCALES["tiny"], seed=7, start=date(2025, 8, 15), end=date(2025, 8, 18))
>>> sorted(tables)[:3]
['customers', 'impressions', 'offers']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

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
    LOYALTY_TIERS,
    SEGMENT_BASKET,
    SEGMENT_CATEGORY_PRIOR,
    SEGMENT_DISCOUNT_BLIND,
    SEGMENT_EXTRA_UNITS,
    SEGMENT_PROMO_BETA,
    SEGMENT_PROMO_ONLY,
    SEGMENT_SHARES,
    SEGMENT_VISITS,
    SEGMENTS,
    SIZES,
    SOLD_BY,
    category_brands,
)

# Random streams: one per kind of draw, each further split by day.
_CUSTOMERS, _PRODUCTS, _OFFERS, _ORDERS, _IMPRESSIONS = 1, 2, 3, 4, 5
OFFER_LEAD_DAYS = 7        # offers are published a week before they start
OFFER_WARMUP_DAYS = 28     # offers that started before the history may still run
MEAN_OFFER_DAYS = 14
WEEKLY_REACH = 0.057       # share of customers the legacy policy reaches per week
REDEMPTION_DELAY = np.array([0.34, 0.2, 0.14, 0.11, 0.09, 0.07, 0.05])
RAW_TABLES = ("customers", "products", "offers", "orders", "order_items", "impressions", "redemptions")
TRUTH_TABLES = ("sim.customer_traits", "sim.customer_category_traits", "sim.product_traits")


@dataclass(frozen=True)
class Shock:
    """A behaviour change on a range of days (a scenario such as Black Friday)."""

    start: date
    end: date  # exclusive
    visits: float = 1.0
    basket: float = 1.0
    promo: float = 0.0       # added to the chance a line is bought on promotion
    redemption: float = 0.0  # added to the redemption logit


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index + 10_000])


def _days(start: date, n: int, offset: int = 0) -> np.ndarray:
    return np.datetime64(start, "D") + np.arange(offset, offset + n)


def _rank_within(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """0-based rank of each row within its group, by descending key."""
    order = np.lexsort((-keys, groups))
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


class _Population:
    """Customers and their hidden traits (fixed for the whole partition range)."""

    def __init__(self, scale: Scale, seed: int):
        rng = _rng(seed, _CUSTOMERS)
        n = scale.customers
        counts = np.floor(SEGMENT_SHARES * n).astype(int)
        counts[np.argsort(-(SEGMENT_SHARES * n - counts))[: n - counts.sum()]] += 1
        self.segment = rng.permutation(np.repeat(np.arange(len(SEGMENTS)), counts))
        store_w = 1.0 / (np.arange(scale.stores) + 3.0)
        self.home_store = rng.choice(scale.stores, size=n, p=store_w / store_w.sum()) + 1
        span = scale.history_days + scale.horizon_days
        joins_later = rng.random(n) < 0.15
        self.join_offset = np.where(joins_later, rng.integers(0, span, n), -rng.integers(1, 730, n))
        seg = self.segment
        self.visit_rate = SEGMENT_VISITS[seg] * rng.lognormal(-0.1, 0.45, n)
        self.basket_mean = SEGMENT_BASKET[seg] * rng.lognormal(0.0, 0.25, n)
        sens = rng.beta(SEGMENT_PROMO_BETA[seg, 0], SEGMENT_PROMO_BETA[seg, 1])
        kind = rng.random(n)
        self.promo_only = kind < SEGMENT_PROMO_ONLY[seg]
        self.discount_blind = ~self.promo_only & (kind < SEGMENT_PROMO_ONLY[seg] + SEGMENT_DISCOUNT_BLIND[seg])
        sens = np.where(self.promo_only, np.maximum(sens, 0.85), sens)
        self.promo_sensitivity = np.where(self.discount_blind, np.minimum(sens, 0.08), sens)
        self.brand_loyalty = np.where(rng.random(n) < 0.25, rng.beta(8, 2, n), rng.beta(2, 4, n))
        taste = rng.gamma(6.0 * len(CATEGORIES) * SEGMENT_CATEGORY_PRIOR[seg] / 6.0 + 0.05)
        self.preference = taste / taste.sum(axis=1, keepdims=True)
        private_label_fan = rng.random((n, len(CATEGORIES))) < np.where(seg == 0, 0.45, 0.12)[:, None]
        self.favourite_brand = np.where(
            private_label_fan, 0, rng.integers(1, BRANDS_PER_CATEGORY, (n, len(CATEGORIES)))
        )
        self.email_consent = rng.random(n) < 0.62
        spend = self.visit_rate * self.basket_mean
        tier = np.searchsorted(np.quantile(spend, [0.55, 0.85]), spend)
        self.loyalty_tier = np.array(LOYALTY_TIERS)[tier]
        self.customer_id = np.arange(1, n + 1, dtype=np.int64)
        # the chance a line is bought on an in-store promotion
        self.promo_line = np.clip(0.03 + 0.38 * self.promo_sensitivity, 0.0, 0.9)
        self.promo_line = np.where(self.promo_only, 0.78, self.promo_line)

    def tables(self, start: date) -> dict[str, pl.DataFrame]:
        join = np.datetime64(start, "D") + self.join_offset
        day = np.datetime64(start, "D") + np.maximum(self.join_offset, 0)
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
        traits = pl.DataFrame(
            {
                "customer_id": self.customer_id,
                "visit_rate": self.visit_rate,
                "basket_mean": self.basket_mean,
                "promo_sensitivity": self.promo_sensitivity,
                "brand_loyalty": self.brand_loyalty,
                "promo_only": self.promo_only,
                "discount_blind": self.discount_blind,
                "day": day,
            }
        )
        n, k = self.preference.shape
        brands = np.array([category_brands(c) for c in range(k)])  # (categories, brands)
        category_traits = pl.DataFrame(
            {
                "customer_id": np.repeat(self.customer_id, k),
                "category": np.tile(CATEGORY_ARRAY, n),
                "preference": self.preference.ravel(),
                "favourite_brand": brands[np.tile(np.arange(k), n), self.favourite_brand.ravel()],
                "day": np.repeat(day, k),
            }
        )
        return {
            "customers": customers,
            "sim.customer_traits": traits,
            "sim.customer_category_traits": category_traits,
        }


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
                    "day": day,
                }
            ),
        }


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


def _shock_arrays(shock: Shock | None, days: np.ndarray) -> tuple[np.ndarray, ...]:
    on = np.zeros(len(days), dtype=bool)
    if shock is not None:
        on = (days >= np.datetime64(shock.start, "D")) & (days < np.datetime64(shock.end, "D"))
    visits = np.where(on, shock.visits if shock else 1.0, 1.0)
    basket = np.where(on, shock.basket if shock else 1.0, 1.0)
    promo = np.where(on, shock.promo if shock else 0.0, 0.0)
    redemption = np.where(on, shock.redemption if shock else 0.0, 0.0)
    return visits, basket, promo, redemption


def _regular_orders(scale: Scale, seed: int, pop: _Population, cat: _Catalogue, days: np.ndarray,
                    shock: Shock | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Shopping that happens with or without offers, one vectorised draw per day."""
    visits_mult = calendar.visit_multiplier(days)
    cat_mult = calendar.category_multiplier(days)
    promo_boost = calendar.promo_boost(days)
    s_visits, s_basket, s_promo, _ = _shock_arrays(shock, days)
    orders, lines = [], []
    for t in range(len(days)):  # a loop over days, not rows
        rng = _rng(seed, _ORDERS, t)
        u = rng.random(scale.customers)
        p = 1.0 - np.exp(-pop.visit_rate * visits_mult[t] * s_visits[t])
        c = np.flatnonzero((pop.join_offset <= t) & (u < p))
        n_lines = 1 + rng.poisson(np.maximum(pop.basket_mean[c] * s_basket[t] - 1.0, 0.0))
        store = np.where(rng.random(len(c)) < 0.9, pop.home_store[c], rng.integers(1, scale.stores + 1, len(c)))
        seconds = rng.integers(7 * 3600, 22 * 3600, len(c))
        lc = np.repeat(c, n_lines)
        pref = pop.preference[lc] * cat_mult[t]
        cum = np.cumsum(pref, axis=1)
        category = (rng.random(len(lc))[:, None] * cum[:, -1:] > cum).sum(axis=1)
        loyal = rng.random(len(lc)) < pop.brand_loyalty[lc]
        u_product = rng.random(len(lc))
        product = np.where(
            loyal,
            cat.sample(category, pop.favourite_brand[lc, category], u_product),
            cat.sample(category, None, u_product),
        )
        qty = 1 + rng.poisson(SEGMENT_EXTRA_UNITS[pop.segment[lc]])
        price = np.round(cat.base_price[product] * rng.uniform(0.95, 1.05, len(lc)), 2)
        promo = rng.random(len(lc)) < np.clip(pop.promo_line[lc] + promo_boost[t] + s_promo[t], 0, 0.95)
        discount = np.where(promo, np.round(qty * price * rng.uniform(0.1, 0.3, len(lc)), 2), 0.0)
        orders.append(dict(t=np.full(len(c), t), customer=c, store=store, seconds=seconds, n_lines=n_lines))
        lines.append(dict(t=np.repeat(np.full(len(c), t), n_lines), order_local=np.repeat(np.arange(len(c)), n_lines),
                          customer=lc, product=product, qty=qty, price=price, promo=promo, discount=discount))
    cat_o = {k: np.concatenate([o[k] for o in orders]) for k in orders[0]}
    cat_l = {k: np.concatenate([x[k] for x in lines]) for k in lines[0]}
    # index lines to their order across days
    day_first = np.r_[0, np.cumsum([len(o["customer"]) for o in orders])[:-1]]
    cat_l["order"] = day_first[cat_l["t"]] + cat_l["order_local"]
    return cat_o, cat_l


def _last_purchase_day(lines: dict[str, np.ndarray], cat: _Catalogue) -> pl.DataFrame:
    """(customer, category, t): the days each customer bought in each category."""
    return (
        pl.DataFrame({"customer": lines["customer"], "category": cat.category[lines["product"]], "t": lines["t"]})
        .unique()
        .sort("t")
    )


def _impressions(scale: Scale, seed: int, pop: _Population, cat: _Catalogue, offers: dict[str, np.ndarray],
                 days: np.ndarray) -> dict[str, np.ndarray]:
    """The legacy targeting policy: 5-10 offers for the customers it reaches."""
    reach = WEEKLY_REACH / 7.0 * np.where(pop.email_consent, 1.25, 0.6)
    out = []
    offer_cat = cat.category[offers["product"]]
    for t in range(len(days)):  # a loop over days, not rows
        rng = _rng(seed, _IMPRESSIONS, t)
        u = rng.random(scale.customers)
        c = np.flatnonzero((pop.join_offset < t) & (u < reach))
        live = np.flatnonzero((offers["start"] <= t) & (offers["end"] >= t))
        if len(c) == 0 or len(live) == 0:
            continue
        k = rng.integers(5, 11, len(c))
        pc, po = np.repeat(c, len(live)), np.tile(live, len(c))
        ok = offers["stores"][po, pop.home_store[pc] - 1] & offers["segments"][po, pop.segment[pc]]
        pc, po = pc[ok], po[ok]
        legacy = SEGMENT_CATEGORY_PRIOR[pop.segment[pc], offer_cat[po]] * (0.4 + offers["depth"][po])
        key = np.log(legacy) + rng.gumbel(size=len(pc))
        keep = _rank_within(pc, key) < k[np.searchsorted(c, pc)]
        pc, po = pc[keep], po[keep]
        n = len(pc)
        out.append(
            dict(
                t=np.full(n, t),
                customer=pc,
                offer=po,
                seconds=rng.integers(6 * 3600, 21 * 3600, n),
                channel=rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARES),
                u_redeem=rng.random(n),
                delay=rng.choice(len(REDEMPTION_DELAY), size=n, p=REDEMPTION_DELAY),
                u_time=rng.random(n),
            )
        )
    if not out:
        return {k: np.zeros(0, dtype=np.int64) for k in
                ("t", "customer", "offer", "seconds", "channel", "u_redeem", "delay", "u_time")}
    imp = {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    order = np.lexsort((imp["seconds"], imp["customer"], imp["t"]))
    return {k: v[order] for k, v in imp.items()}


def impression_probabilities(pop: _Population, cat: _Catalogue, offers: dict[str, np.ndarray],
                             imp: dict[str, np.ndarray], purchases: pl.DataFrame,
                             shock_logit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True (p_redeem, p_base) of each impression, as of the start of its day."""
    c, o, t = imp["customer"], imp["offer"], imp["t"]
    product = offers["product"][o]
    category = cat.category[product]
    since = (
        pl.DataFrame({"customer": c, "category": category, "t": t, "row": np.arange(len(c))})
        .sort("t")
        .join_asof(purchases.rename({"t": "bought"}).sort("bought"), left_on="t", right_on="bought",
                   by=["customer", "category"], strategy="backward", allow_exact_matches=False,
                   check_sortedness=False)
        .sort("row")
    )
    days_since = (since["t"] - since["bought"]).to_numpy().astype(float)  # NaN: never bought
    pref = pop.preference[c, category]
    match = pop.favourite_brand[c, category] == cat.brand[product]
    share = oracle.product_share(match, pop.brand_loyalty[c], cat.share_in_category[product],
                                 cat.share_in_brand[product])
    p_base = oracle.baseline_purchase_probability(pop.visit_rate[c], pop.basket_mean[c], pref, share)
    uplift = oracle.uplift_probability(
        offers["depth"][o], pref, pop.promo_sensitivity[c], days_since, match, pop.brand_loyalty[c],
        pop.promo_only[c], pop.discount_blind[c], shock_logit[t],
    )
    return oracle.redemption_probability(p_base, uplift), p_base


def simulate(scale: Scale, seed: int, start: date, end: date, shock: Shock | None = None) -> dict[str, pl.DataFrame]:
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

    Returns
    -------
    dict of str to polars.DataFrame
        The raw tables and the hidden ``sim.*`` truth tables, every row with
        its ``day``. Callers keep the days they need.
    """
    n_days = max((end - start).days, 0)
    days = _days(start, n_days)
    pop = _Population(scale, seed)
    cat = _Catalogue(scale, seed)
    offers = _offers(scale, seed, cat, n_days)
    reg_orders, reg_lines = _regular_orders(scale, seed, pop, cat, days, shock)
    purchases = _last_purchase_day(reg_lines, cat)
    imp = _impressions(scale, seed, pop, cat, offers, days)
    shock_logit = _shock_arrays(shock, days)[3]
    p_redeem, _ = impression_probabilities(pop, cat, offers, imp, purchases, shock_logit)

    # Redemptions: drawn per impression, at most one per (customer, offer), within
    # 7 days of the impression and the offer's end, stopped once a cap is reached.
    redeemed = imp["u_redeem"] < p_redeem
    r = {k: v[redeemed] for k, v in imp.items()}
    shown = r["t"] * 86400 + r["seconds"]
    latest = np.minimum(shown + 7 * 86400 - 1, (offers["end"][r["offer"]] + 1) * 86400 - 1)
    at = np.minimum(shown + r["delay"] * 86400 + 600 + (r["u_time"] * 5 * 3600).astype(np.int64), latest)
    red = pl.DataFrame({"customer": r["customer"], "offer": r["offer"], "at": at})
    red = red.filter(pl.col("at") < n_days * 86400).sort("at", "customer", "offer")
    red = red.unique(["customer", "offer"], keep="first", maintain_order=True)
    cap = offers["cap"][red["offer"].to_numpy()]
    red = red.with_columns(nth=pl.int_range(pl.len()).over("offer"), cap=cap)
    red = red.filter((pl.col("cap") < 0) | (pl.col("nth") < pl.col("cap"))).sort("at", "customer", "offer")
    rc, ro, rat = red["customer"].to_numpy(), red["offer"].to_numpy(), red["at"].to_numpy()
    r_product = offers["product"][ro]
    r_kind = offers["kind"][ro]
    r_price = cat.base_price[r_product]
    r_qty = np.where(r_kind == 2, 2, 1)
    r_discount = np.round(np.select([r_kind == 0, r_kind == 1],
                                    [r_price * offers["value"][ro] / 100.0, np.minimum(offers["value"][ro], r_price)],
                                    r_price), 2)

    # Orders: regular and redemption orders, numbered by (time, kind, customer).
    origin = np.datetime64(start, "s")
    all_orders = pl.DataFrame(
        {
            "src": np.r_[np.arange(len(reg_orders["customer"])), np.arange(len(rc))],
            "kind": np.r_[np.zeros(len(reg_orders["customer"]), int), np.ones(len(rc), int)],
            "customer": np.r_[reg_orders["customer"], rc],
            "store": np.r_[reg_orders["store"], pop.home_store[rc]],
            "at": np.r_[reg_orders["t"] * 86400 + reg_orders["seconds"], rat],
        }
    ).sort("at", "kind", "customer", "src").with_columns(order_id=pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
    regular_id = np.empty(len(reg_orders["customer"]), np.int64)
    red_id = np.empty(len(rc), np.int64)
    kinds, srcs, ids = (all_orders[c].to_numpy() for c in ("kind", "src", "order_id"))
    regular_id[srcs[kinds == 0]] = ids[kinds == 0]
    red_id[srcs[kinds == 1]] = ids[kinds == 1]

    items = pl.DataFrame(
        {
            "order_id": np.r_[regular_id[reg_lines["order"]], red_id],
            "product_id": cat.product_id[np.r_[reg_lines["product"], r_product]],
            "quantity": np.r_[reg_lines["qty"], r_qty].astype(np.int32),
            "unit_price": np.r_[reg_lines["price"], r_price],
            "is_promo": np.r_[reg_lines["promo"], np.ones(len(rc), bool)],
            "discount_amount": np.r_[reg_lines["discount"], r_discount],
        }
    ).sort("order_id", maintain_order=True).with_columns(
        order_item_id=pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
    )
    totals = items.group_by("order_id").agg(
        total_amount=(pl.col("quantity") * pl.col("unit_price") - pl.col("discount_amount")).sum().round(2),
        num_items=pl.len().cast(pl.Int32),
    )
    orders = (
        all_orders.join(totals, on="order_id")
        .with_columns(
            customer_id=(pl.col("customer") + 1).cast(pl.Int64),  # ids are 1..n
            store_id=pl.col("store").cast(pl.Int32),
            order_timestamp=pl.lit(origin) + pl.duration(seconds=pl.col("at")),
        )
        .with_columns(day=pl.col("order_timestamp").dt.date())
        .select("order_id", "customer_id", "store_id", "order_timestamp", "total_amount", "num_items", "day")
        .sort("order_id")
    )
    items = items.join(orders.select("order_id", "day"), on="order_id").sort("order_item_id")

    imp_frame = pl.DataFrame(
        {
            "customer_id": pop.customer_id[imp["customer"]],
            "offer_id": offers["offer_id"][imp["offer"]],
            "shown_at": imp["t"] * 86400 + imp["seconds"],
            "channel": np.array(CHANNELS)[imp["channel"]] if len(imp["t"]) else np.array([], dtype=str),
        }
    ).with_columns(
        impression_id=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        shown_timestamp=pl.lit(origin) + pl.duration(seconds=pl.col("shown_at")),
    ).with_columns(day=pl.col("shown_timestamp").dt.date()).drop("shown_at")

    redemptions = pl.DataFrame(
        {
            "customer_id": pop.customer_id[rc],
            "offer_id": offers["offer_id"][ro],
            "order_id": red_id,
            "at": rat,
        }
    ).with_columns(
        redemption_id=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        redeemed_timestamp=pl.lit(origin) + pl.duration(seconds=pl.col("at")),
    ).with_columns(day=pl.col("redeemed_timestamp").dt.date()).drop("at")

    offer_start = np.datetime64(start, "D") + offers["start"]
    offer_frame = pl.DataFrame(
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

    tables = {
        **pop.tables(start),
        **cat.tables(start),
        "offers": offer_frame,
        "orders": orders,
        "order_items": items,
        "impressions": imp_frame,
        "redemptions": redemptions,
    }
    return tables


def window(tables: dict[str, pl.DataFrame], start: date, end: date) -> dict[str, pl.DataFrame]:
    """Keep the rows whose ``day`` is in [start, end)."""
    return {name: t.filter((pl.col("day") >= start) & (pl.col("day") < end)) for name, t in tables.items()}
