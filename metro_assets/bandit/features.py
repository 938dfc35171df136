"""The retailer's log as running aggregates, and the features a learning policy scores with.

A :class:`LogState` is built only from :class:`~metro_assets.bandit.environment.Observation`s
(purchase lines, impressions, redemptions) and the public :class:`~metro_assets.bandit.environment.Catalog`;
it never reads the world. Its features are those of the ranker that matter
(docs/FEATURES.md), computed incrementally in NumPy instead of by the
warehouse's SQL so that a policy can be scored every simulated day:
the category's share of the customer's lines, the brand's share in that
category, the customer's promo share and own redemption rate, discount depth
(and depth x promo share), whether and how often the customer bought the
product, how overdue a regular purchase is (days since the last purchase over
the customer's mean gap), recent impressions of the offer and of its category
(fatigue, from the retailer's own log), month end, bogo, and trips so far.

Everything for day t is computed from days before t (``features`` is called
before the day's observation is ingested).
"""

from __future__ import annotations

import copy

import numpy as np

from metro_assets.bandit.environment import Catalog, Observation
from metro_assets.simulation.catalog import BRANDS_PER_CATEGORY
from metro_assets.simulation.world import FATIGUE_DAYS

FEATURES = (
    "log_category_share", "log_brand_share", "promo_share_logit", "depth", "depth_x_promo_share",
    "bought_before", "log_purchase_days", "overdue", "overdue_squared", "log_days_since_purchase",
    "own_redemption_rate_log", "fatigue_offer", "fatigue_category", "month_end", "month_end_x_promo_share",
    "bogo", "log_trips",
)


class LogState:
    """Running aggregates of the retailer's log (one per policy run: runs diverge)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        n, k, m = len(catalog.customer_id), catalog.n_categories, len(catalog.product_id)
        self.m = m
        self.lines = np.zeros(n)
        self.promo_lines = np.zeros(n)
        self.trips = np.zeros(n)
        self.cat_lines = np.zeros((n, k))
        self.brand_lines = np.zeros((n, k * BRANDS_PER_CATEGORY))
        self.impressions = np.zeros(n)
        self.redemptions = np.zeros(n)
        # (customer, product) purchase days: sorted keys, first and last day, days bought
        self.cp_key = np.zeros(0, np.int64)
        self.cp_first = np.zeros(0, np.int64)
        self.cp_last = np.zeros(0, np.int64)
        self.cp_days = np.zeros(0, np.int64)
        # the last FATIGUE_DAYS days of impressions (day, customer, offer)
        self.recent: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._c_order = np.argsort(catalog.customer_id)
        self._o_order = np.argsort(catalog.offer_id)
        self._p_order = np.argsort(catalog.product_id)

    def copy(self) -> "LogState":
        """An independent copy (the catalog is shared: it never changes)."""
        return copy.deepcopy(self, {id(self.catalog): self.catalog})

    # ----------------------------------------------------------------- ids -> positions
    def customer_index(self, ids: np.ndarray) -> np.ndarray:
        return self._c_order[np.searchsorted(self.catalog.customer_id[self._c_order], ids)]

    def offer_index(self, ids: np.ndarray) -> np.ndarray:
        return self._o_order[np.searchsorted(self.catalog.offer_id[self._o_order], ids)]

    def product_index(self, ids: np.ndarray) -> np.ndarray:
        return self._p_order[np.searchsorted(self.catalog.product_id[self._p_order], ids)]

    # ----------------------------------------------------------------- ingest one day
    def ingest(self, obs: Observation) -> None:
        """Add one day's log (call after that day's features were taken)."""
        cat = self.catalog
        c = self.customer_index(obs.line_customer)
        p = self.product_index(obs.line_product)
        k = cat.category[p]
        np.add.at(self.lines, c, 1.0)
        np.add.at(self.promo_lines, c, obs.line_promo.astype(float))
        np.add.at(self.cat_lines, (c, k), 1.0)
        np.add.at(self.brand_lines, (c, k * BRANDS_PER_CATEGORY + cat.brand[p]), 1.0)
        self.trips[np.unique(c)] += 1.0
        key = np.unique(c * self.m + p)
        pos = np.searchsorted(self.cp_key, key)
        found = pos < len(self.cp_key)
        found[found] = self.cp_key[pos[found]] == key[found]
        self.cp_last[pos[found]] = obs.t
        self.cp_days[pos[found]] += 1
        new = key[~found]
        if len(new):
            at = np.searchsorted(self.cp_key, new)
            self.cp_key = np.insert(self.cp_key, at, new)
            self.cp_first = np.insert(self.cp_first, at, obs.t)
            self.cp_last = np.insert(self.cp_last, at, obs.t)
            self.cp_days = np.insert(self.cp_days, at, 1)
        ic = self.customer_index(obs.impression_customer)
        np.add.at(self.impressions, ic, 1.0)
        np.add.at(self.redemptions, self.customer_index(obs.redemption_customer), 1.0)
        self.recent.append((obs.t, ic, self.offer_index(obs.impression_offer)))
        self.recent = [r for r in self.recent if r[0] > obs.t - FATIGUE_DAYS]

    # ----------------------------------------------------------------- features
    def features(self, t: int, c: np.ndarray, o: np.ndarray) -> np.ndarray:
        """The (pairs x FEATURES) matrix of customers ``c`` and offers ``o`` (positions) as of the start of day ``t``."""
        cat = self.catalog
        p = cat.offer_product[o]
        k = cat.category[p]
        lines = self.lines[c]
        cat_lines = self.cat_lines[c, k]
        promo = (self.promo_lines[c] + 1.0) / (lines + 2.0)
        depth = np.nan_to_num(cat.depth[o], nan=0.15)
        key = c * self.m + p
        pos = np.minimum(np.searchsorted(self.cp_key, key), max(len(self.cp_key) - 1, 0))
        found = (self.cp_key[pos] == key) if len(self.cp_key) else np.zeros(len(c), bool)
        days = np.where(found, self.cp_days[pos] if len(self.cp_key) else 0, 0)
        first = np.where(found, self.cp_first[pos] if len(self.cp_key) else 0, 0)
        last = np.where(found, self.cp_last[pos] if len(self.cp_key) else 0, 0)
        since = np.where(found, t - last, 0).astype(float)
        gap = np.where(days >= 2, (last - first) / np.maximum(days - 1, 1), np.nan)
        overdue = np.where(days >= 2, np.clip(since / np.maximum(np.nan_to_num(gap, nan=1.0), 1.0), 0.0, 3.0), 0.0)
        fat_offer, fat_cat = self._fatigue(c, o, k)
        day = np.datetime64(cat.history_start, "D") + t
        next_month = (day.astype("datetime64[M]") + 1).astype("datetime64[D]")
        month_end = float(day >= next_month - 6)
        x = np.column_stack([
            np.log((cat_lines + 0.2) / (lines + 4.0)),
            np.log((self.brand_lines[c, k * BRANDS_PER_CATEGORY + cat.brand[p]] + 0.1) / (cat_lines + 1.0)),
            np.log(promo / (1.0 - promo)),
            depth,
            depth * promo,
            found.astype(float),
            np.log1p(days),
            overdue,
            overdue ** 2,
            np.where(found, np.log1p(since), 0.0),
            np.log((self.redemptions[c] + 0.3) / (self.impressions[c] + 10.0)),
            np.minimum(fat_offer, 4),
            np.minimum(fat_cat, 8),
            np.full(len(c), month_end),
            month_end * promo,
            (cat.discount_type[o] == 2).astype(float),
            np.log1p(self.trips[c]),
        ])
        return x

    def _fatigue(self, c: np.ndarray, o: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.recent:
            return np.zeros(len(c)), np.zeros(len(c))
        hc = np.concatenate([r[1] for r in self.recent])
        ho = np.concatenate([r[2] for r in self.recent])
        n_off, n_cat = len(self.catalog.offer_id), self.catalog.n_categories
        hk = self.catalog.category[self.catalog.offer_product[ho]]
        return (_count(hc * n_off + ho, c * n_off + o).astype(float),
                _count(hc * n_cat + hk, c * n_cat + k).astype(float))


def _count(history: np.ndarray, query: np.ndarray) -> np.ndarray:
    h = np.sort(history)
    return np.searchsorted(h, query, side="right") - np.searchsorted(h, query, side="left")
