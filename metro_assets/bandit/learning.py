"""Bayesian logistic regression with a Laplace approximation, and the impression log it learns from.

The posterior over the coefficients of ``p(redeem) = sigmoid(x . beta)`` is
approximated by a Gaussian at its mode: mean = the MAP estimate (Newton's
method on the weighted log-likelihood plus a Gaussian prior), covariance =
the inverse Hessian there. The same fit, read as a point estimate, is the
batch ranker's and epsilon-greedy's model; Thompson sampling draws from it.

Delayed feedback: a redemption may come up to 7 days after the impression.
An impression whose window is still open counts as a negative with weight
F(days observed), the share of redemptions that arrive that soon, estimated
from the log itself (:func:`delay_cdf`); a redemption already seen counts in
full. The batch ranker, as it runs today, uses closed windows only.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([np.ones(4000), rng.normal(size=4000)])
>>> y = (rng.random(4000) < 1 / (1 + np.exp(-(-1.0 + 2.0 * X[:, 1])))).astype(float)
>>> post = fit_logistic(X, y, np.ones(4000), np.zeros(2), np.full(2, 1e-4))
>>> np.round(post.mean, 1).tolist()
[-1.0, 2.0]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from metro_assets.simulation.oracle import WEEK

NEGATIVE_SHARE = 0.25  # negatives kept in a fit (weight 1 / share), like the ranker's 1:4 sampling


@dataclass(frozen=True)
class Posterior:
    """A Gaussian posterior over logistic-regression coefficients (intercept first)."""

    mean: np.ndarray
    cov: np.ndarray

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` coefficient draws, (n, d)."""
        chol = np.linalg.cholesky(self.cov + 1e-10 * np.eye(len(self.mean)))
        return self.mean[None, :] + rng.standard_normal((n, len(self.mean))) @ chol.T


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, prior_mean: np.ndarray, prior_precision: np.ndarray,
                 start: np.ndarray | None = None, iterations: int = 25, tol: float = 1e-4) -> Posterior:
    """The Laplace posterior of a weighted logistic regression with a diagonal Gaussian prior.

    Parameters
    ----------
    X : (n, d) array, its first column the intercept's ones.
    y, w : (n,) arrays of labels (0/1) and weights.
    prior_mean, prior_precision : (d,) arrays.
    start : (d,) array, optional
        Where Newton's method starts (yesterday's mode: a daily update takes a few steps).
    """
    beta = prior_mean.astype(float).copy() if start is None else start.astype(float).copy()
    P = np.diag(prior_precision)

    def loss(b: np.ndarray) -> float:  # the negative log posterior
        z = X @ b
        return float(w @ (np.logaddexp(0.0, z) - y * z) + 0.5 * prior_precision @ (b - prior_mean) ** 2)

    current = loss(beta)
    for _ in range(iterations):  # damped Newton steps, not rows
        p = sigmoid(X @ beta)
        g = X.T @ (w * (y - p)) - prior_precision * (beta - prior_mean)
        H = (X * (w * p * (1.0 - p))[:, None]).T @ X + P
        step = np.linalg.solve(H, g)
        scale = 1.0
        while scale > 1e-4:  # halve the step until the posterior improves
            trial = loss(beta + scale * step)
            if trial <= current + 1e-12:
                break
            scale /= 2.0
        beta, current = beta + scale * step, min(trial, current)
        if np.max(np.abs(scale * step)) < tol:
            break
    p = sigmoid(X @ beta)
    H = (X * (w * p * (1.0 - p))[:, None]).T @ X + P
    return Posterior(beta, np.linalg.inv(H))


class Standardizer:
    """Centres and scales features with the warm-up log's mean and spread, and adds the intercept."""

    def __init__(self, X: np.ndarray):
        self.mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        sd = X.std(axis=0) if len(X) else np.ones(X.shape[1])
        self.sd = np.where(sd > 1e-9, sd, 1.0)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(X)), (X - self.mean) / self.sd])


class TrainingLog:
    """Shown impressions (day, customer, offer, features, the model's prediction) and the redemptions seen."""

    def __init__(self, n_offers: int):
        self.n_offers = n_offers
        self.parts: list[dict[str, np.ndarray]] = []
        self.red: list[np.ndarray] = []  # keys (customer * offers + offer) * DAYS + day
        self._cache: dict | None = None

    DAYS = 100_000

    def copy(self) -> "TrainingLog":
        return copy.deepcopy(self)

    def add(self, t: int, X: np.ndarray, c: np.ndarray, o: np.ndarray, phat: np.ndarray | None = None) -> None:
        self.parts.append({"t": np.full(len(c), t, np.int64), "c": c.astype(np.int64), "o": o.astype(np.int64),
                           "X": X.astype(np.float64),
                           "phat": np.full(len(c), np.nan) if phat is None else phat.astype(float)})
        self._cache = None

    def add_redemptions(self, t: int, c: np.ndarray, o: np.ndarray) -> None:
        self.red.append((c.astype(np.int64) * self.n_offers + o) * self.DAYS + t)
        self._cache = None

    def _all(self) -> dict[str, np.ndarray]:
        if self._cache is None:
            if len(self.parts) > 1:
                self.parts = [{key: np.concatenate([p[key] for p in self.parts]) for key in self.parts[0]}]
            if len(self.red) > 1:
                self.red = [np.sort(np.concatenate(self.red))]
            self._cache = {"imp": self.parts[0] if self.parts else None,
                           "red": np.sort(self.red[0]) if self.red else np.zeros(0, np.int64)}
        return self._cache

    def labelled(self, now: int, window: int, closed_only: bool, cdf: np.ndarray,
                 seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, X, y, weight) of the impressions of the ``window`` days before ``now``, as known at ``now``.

        Labels: a redemption of the same (customer, offer) on the impression's
        day or the 6 after, seen before ``now``. ``closed_only`` keeps only
        impressions whose 7 days are over; otherwise an open one's negative
        counts with weight ``cdf[days observed]``. Negatives are sampled
        (NEGATIVE_SHARE, by a hash of the row, the same every day) and weighted back.
        """
        a = self._all()
        imp = a["imp"]
        if imp is None:
            return np.zeros(0, np.int64), np.zeros((0, 0)), np.zeros(0), np.zeros(0)
        t = imp["t"]
        keep = (t < now) & (t >= now - window)
        if closed_only:
            keep &= t + WEEK <= now
        rows = np.flatnonzero(keep)
        y = self._labels(rows, now).astype(float)
        age = np.minimum(now - t[rows], WEEK)
        w = np.where(y > 0, 1.0, cdf[age])
        u = ((imp["c"][rows] * 7919 + imp["o"][rows] * 104_729 + t[rows] * 1_299_709 + seed) % 1000) / 1000.0
        sampled = (y > 0) | (u < NEGATIVE_SHARE)
        rows, y, w = rows[sampled], y[sampled], w[sampled] / np.where(y[sampled] > 0, 1.0, NEGATIVE_SHARE)
        return rows, imp["X"][rows], y, w

    def _labels(self, rows: np.ndarray, now: int) -> np.ndarray:
        a = self._all()
        imp, red = a["imp"], a["red"]
        base = (imp["c"][rows] * self.n_offers + imp["o"][rows]) * self.DAYS
        lo = base + imp["t"][rows]
        hi = base + np.minimum(imp["t"][rows] + WEEK - 1, now - 1)
        return np.searchsorted(red, hi, side="right") > np.searchsorted(red, lo, side="left")

    def column(self, name: str) -> np.ndarray:
        imp = self._all()["imp"]
        return imp[name] if imp is not None else np.zeros(0)


def delay_cdf(log: TrainingLog, now: int) -> np.ndarray:
    """F[a]: share of redemptions seen within ``a`` days of the impression (a = 0..7), from closed windows.

    F[0] = 0 and F[7] = 1; estimated from the impressions whose 7 days are
    over (the retailer's own log), falling back to a week-long uniform when there are none.
    """
    a = log._all()
    imp, red = a["imp"], a["red"]
    fallback = np.arange(WEEK + 1) / WEEK
    if imp is None or len(red) == 0:
        return fallback
    rows = np.flatnonzero(imp["t"] + WEEK <= now)
    if len(rows) == 0:
        return fallback
    base = (imp["c"][rows] * log.n_offers + imp["o"][rows]) * log.DAYS
    lo = base + imp["t"][rows]
    i = np.searchsorted(red, lo, side="left")
    ok = i < len(red)
    delay = np.full(len(rows), -1)
    delay[ok] = red[i[ok]] - lo[ok]
    delay = delay[(delay >= 0) & (delay < WEEK)]
    if len(delay) < 20:
        return fallback
    counts = np.bincount(delay, minlength=WEEK)
    return np.r_[0.0, np.cumsum(counts) / counts.sum()]
