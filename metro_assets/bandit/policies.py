"""Policies that drive the environment: each scores the day's eligible offers of the customers who came.

* ``thompson``: contextual Thompson sampling. A Bayesian logistic regression
  over the log's features (:mod:`metro_assets.bandit.features`), its Laplace
  posterior refitted every day from the log up to the day before (open
  redemption windows weighted by the delay distribution); each customer's
  scores use their own coefficient draw. Each offer's rate relative to the
  model has a Beta-Bernoulli posterior whose prior is centred on the model's
  prediction, as strong as the established offers show the model to be
  (empirical Bayes: the spread of their observed over expected redemptions,
  beyond Poisson noise): a new offer starts at the model's guess with that
  uncertainty, and is explored until its own impressions say how it does.
* ``epsilon_greedy``: the same daily model's mean; each slot goes, with
  probability ``EPSILON``, to a uniformly drawn eligible offer.
* ``batch``: the weekly batch ranker as it runs today: the same model fitted
  on Mondays on the trailing 8 weeks of impressions whose 7-day window has
  closed, greedy in between.
* ``random``: uniform scores.
* ``oracle``: the true redemption probability (the only policy given the truth).

A policy sees the public :class:`~metro_assets.bandit.environment.Catalog`, each
day's candidates and its own :class:`~metro_assets.bandit.environment.Observation`s.
"""

from __future__ import annotations

import numpy as np

from metro_assets.bandit.environment import Candidates, Catalog, Observation
from metro_assets.bandit.features import LogState
from metro_assets.bandit.learning import (
    Posterior,
    Standardizer,
    TrainingLog,
    delay_cdf,
    fit_logistic,
    sigmoid,
)

POLICIES = ("thompson", "epsilon_greedy", "batch", "random", "oracle")
EPSILON = 0.10
WINDOW_DAYS = 56            # trailing log a model learns from (the ranker's 8 weeks)
PRIOR_SD = 1.0              # prior on the standardised coefficients
PRIOR_IMPRESSIONS = 30.0    # weight of the model's prediction in an offer's Beta prior, until offers are known
ESTABLISHED_TRIALS = 200    # offers with this many (delay-weighted) impressions tell how offers stray from the model
MIN_BETWEEN = 0.01          # the smallest between-offer variance of rate / model rate (10% spread)
_POLICY_STREAM = 41


class Policy:
    """The interface: ``begin`` once, then per day ``scores`` and ``observe``."""

    name = "policy"
    uses_truth = False

    def begin(self, catalog: Catalog, log: LogState | None, train: TrainingLog | None, t: int, seed: int,
              k: int) -> None:
        self.catalog, self.seed, self.k = catalog, seed, k

    def scores(self, t: int, cand: Candidates, truth: dict | None = None) -> np.ndarray:
        raise NotImplementedError

    def observe(self, t: int, obs: Observation, cand: Candidates, rows: np.ndarray) -> None:
        """The day's log after the lists ``rows`` (of ``cand``) were shown."""

    def rng(self, t: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _POLICY_STREAM, POLICIES.index(self.name), t])


class RandomPolicy(Policy):
    name = "random"

    def scores(self, t, cand, truth=None):
        return self.rng(t).random(len(cand))


class OraclePolicy(Policy):
    name = "oracle"
    uses_truth = True

    def scores(self, t, cand, truth=None):
        return truth["p_redeem"]


class LearningPolicy(Policy):
    """A logistic model of the log's features, refitted on its own schedule."""

    closed_only = False

    def begin(self, catalog, log, train, t, seed, k):
        super().begin(catalog, log, train, t, seed, k)
        self.log, self.train = log, train
        X = train.column("X")
        self.std = Standardizer(X)
        d = X.shape[1] + 1 if X.ndim == 2 and X.shape[1] else None
        y_rate = 0.03
        self.prior_mean = np.r_[np.log(y_rate / (1 - y_rate)), np.zeros(d - 1)]
        self.prior_precision = np.r_[0.25, np.full(d - 1, 1.0 / PRIOR_SD ** 2)]
        self.post: Posterior | None = None
        self.fits = 0
        self._x: np.ndarray | None = None
        self.fit(t)

    def due(self, t: int) -> bool:
        return True

    def fit(self, t: int) -> None:
        cdf = delay_cdf(self.train, t)
        rows, X, y, w = self.train.labelled(t, WINDOW_DAYS, self.closed_only, cdf, self.seed)
        start = None if self.post is None else self.post.mean
        self.post = fit_logistic(self.std(X), y, w, self.prior_mean, self.prior_precision, start)
        self.fits += 1
        self.cdf = cdf

    def scores(self, t, cand, truth=None):
        if t != getattr(self, "_fitted_for", None) and self.due(t):
            self.fit(t)
        self._fitted_for = t
        self._x = self.log.features(t, cand.c, cand.o)
        self._z = self.std(self._x)
        self._p = sigmoid(self._z @ self.post.mean)
        return self.choose(t, cand)

    def choose(self, t: int, cand: Candidates) -> np.ndarray:
        return self._p

    def observe(self, t, obs, cand, rows):
        self.train.add(t, self._x[rows], cand.c[rows], cand.o[rows], self._p[rows])
        self.train.add_redemptions(t, self.log.customer_index(obs.redemption_customer),
                                   self.log.offer_index(obs.redemption_offer))
        self.log.ingest(obs)


class BatchPolicy(LearningPolicy):
    """The weekly batch ranker: refitted on Mondays, on closed label windows."""

    name = "batch"
    closed_only = True

    def due(self, t):
        return (np.datetime64(self.catalog.history_start, "D") + t).astype("datetime64[D]").item().weekday() == 0


class EpsilonGreedyPolicy(LearningPolicy):
    name = "epsilon_greedy"

    def choose(self, t, cand):
        rng = self.rng(t)
        _, inv, n = np.unique(cand.c, return_inverse=True, return_counts=True)
        explore = rng.random(len(cand)) < EPSILON * self.k / np.maximum(n[inv], self.k)
        return np.where(explore, 2.0 + rng.random(len(cand)), self._p)


class ThompsonPolicy(LearningPolicy):
    name = "thompson"

    def fit(self, t):
        super().fit(t)
        # each offer's Beta-Bernoulli posterior of its rate, its prior centred on the model's predictions
        imp_o = self.train.column("o")
        n_off = len(self.catalog.offer_id)
        self.offer_trials = np.zeros(n_off)
        self.offer_expected = np.zeros(n_off)
        self.offer_redemptions = np.zeros(n_off)
        if len(imp_o):
            tt = self.train.column("t")
            rows = np.flatnonzero((tt < t) & (tt >= t - WINDOW_DAYS))
            y = self.train._labels(rows, t).astype(float)
            f = np.where(y > 0, 1.0, self.cdf[np.minimum(t - tt[rows], 7)])
            phat = sigmoid(self.std(self.train.column("X")[rows]) @ self.post.mean)  # today's model on them
            o = imp_o[rows]
            self.offer_trials = np.bincount(o, weights=f, minlength=n_off)
            self.offer_expected = np.bincount(o, weights=f * phat, minlength=n_off)
            self.offer_redemptions = np.bincount(o, weights=y, minlength=n_off)
        # empirical Bayes: how far established offers' own rates stray from the model's, beyond sampling
        # noise, sets how much a new offer's prior trusts the model (its strength in pseudo-impressions)
        e, r = self.offer_expected, self.offer_redemptions
        known = (self.offer_trials >= ESTABLISHED_TRIALS) & (e > 1.0)
        if known.sum() >= 5:
            excess = (r[known] / e[known] - 1.0) ** 2 - 1.0 / e[known]  # minus the Poisson noise of r / e
            self.between = float(np.clip(np.average(excess, weights=e[known]), MIN_BETWEEN, 4.0))
        else:
            self.between = 1.0 / (PRIOR_IMPRESSIONS * 0.03)

    def choose(self, t, cand):
        rng = self.rng(t)
        uc, inv = np.unique(cand.c, return_inverse=True)
        theta = self.post.sample(rng, len(uc))
        p = sigmoid(np.einsum("ij,ij->i", self._z, theta[inv]))
        # the offer factor: a Beta draw of the offer's rate over the model's rate for it
        o = cand.o
        trials = self.offer_trials[o]
        seen = np.where(trials > 0, self.offer_expected[o] / np.maximum(trials, 1e-9), np.nan)
        offer_mean = _group_mean(o, self._p)
        m = np.clip(np.where(np.isnan(seen), offer_mean, seen), 1e-4, 0.5)
        # Beta(n0 m, n0 (1 - m)) has variance m^2 x between for the rate over m: n0 = 1 / (m between) - 1
        n0 = np.clip(1.0 / (m * self.between) - 1.0, 2.0, 1e5)
        a = n0 * m + self.offer_redemptions[o]
        b = n0 * (1.0 - m) + np.maximum(trials - self.offer_redemptions[o], 0.0)
        factor = rng.beta(a, b) / m
        return p * factor


def _group_mean(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    total = np.bincount(group, weights=value)
    count = np.bincount(group)
    return (total / np.maximum(count, 1))[group]


def make(name: str) -> Policy:
    """A fresh policy by name (one of POLICIES)."""
    classes = {"thompson": ThompsonPolicy, "epsilon_greedy": EpsilonGreedyPolicy, "batch": BatchPolicy,
               "random": RandomPolicy, "oracle": OraclePolicy}
    if name not in classes:
        raise ValueError(f"policy {name!r} is not one of {', '.join(POLICIES)}")
    return classes[name]()
