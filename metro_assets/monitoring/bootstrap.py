"""Bootstrap confidence intervals over customers, vectorised (Poisson weights x per-customer values).

Every evaluation metric is a ratio of sums over customers (a mean is a sum
over a count). A replicate draws a Poisson(1) weight per customer (the
Poisson bootstrap: a multinomial resample of n customers, asymptotically),
and every sum becomes a weighted sum, so all replicates of all columns are one
matrix product ``W @ X``. The same weights serve every policy, so a
difference between two policies is a *paired* difference: customers drawn
twice count twice for both.

Examples
--------
>>> import numpy as np
>>> x = np.random.default_rng(0).normal(1.0, 1.0, size=(2000, 1))
>>> point, low, high = mean_ci(x, seed=1)
>>> bool(low[0] < 1.0 < high[0]) and bool(high[0] - low[0] < 0.2)
True
"""

from __future__ import annotations

import warnings

import numpy as np

REPLICATES = 400   # enough for a stable 95% percentile interval; cost is one (400 x n) @ (n x m) product
LEVEL = 0.95
_CHUNK = 100       # replicates drawn at a time: bounds the weight matrix's memory at default scale


def replicate_sums(x: np.ndarray, replicates: int = REPLICATES, seed: int | list[int] = 0) -> np.ndarray:
    """Column sums of ``x`` (n customers x m columns) under ``replicates`` Poisson(1) customer weights.

    Returns
    -------
    numpy.ndarray
        ``replicates`` x m. The same ``seed`` gives the same weights for the
        same number of customers, so two calls on the same customers are paired.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    rng = np.random.default_rng(seed)
    out = np.empty((replicates, x.shape[1]))
    for start in range(0, replicates, _CHUNK):  # a loop over chunks of replicates, not customers
        stop = min(start + _CHUNK, replicates)
        w = rng.poisson(1.0, size=(stop - start, x.shape[0])).astype(np.float32)
        out[start:stop] = w @ x
    return out


def interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column of a (replicates x m) matrix; NaN replicates are ignored."""
    tail = 100.0 * (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives a NaN interval
        low = np.nanpercentile(replicates, tail, axis=0)
        high = np.nanpercentile(replicates, 100.0 - tail, axis=0)
    return low, high


def ratio_ci(num: np.ndarray, den: np.ndarray, replicates: int = REPLICATES, seed: int | list[int] = 0,
             level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point value and interval of sum(num) / sum(den) per column, customers resampled together.

    ``num`` is n x m; ``den`` is n x m or n x 1 (one denominator for every column).
    """
    num = np.asarray(num, dtype=float).reshape(len(num), -1)
    den = np.asarray(den, dtype=float).reshape(len(den), -1)
    m = num.shape[1]
    sums = replicate_sums(np.hstack([num, den]), replicates, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = num.sum(axis=0) / den.sum(axis=0)
        reps = sums[:, :m] / sums[:, m:]
    low, high = interval(reps, level)
    return point, low, high


def mean_ci(x: np.ndarray, replicates: int = REPLICATES, seed: int | list[int] = 0,
            level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point mean and interval of each column of ``x`` (n customers x m), customers resampled."""
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    return ratio_ci(x, np.ones((len(x), 1)), replicates, seed, level)


# Poisson(1)'s cumulative distribution up to 20 (P(X > 20) < 1e-19): the inverse CDF of a uniform draw
_POISSON_CDF = np.cumsum(np.exp(-1.0) / np.cumprod(np.r_[1.0, np.arange(1.0, 21.0)]))
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-mixed 64-bit hash of each value (arithmetic wraps around)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def keyed_weights(ids: np.ndarray, replicates: range, seed: int = 0) -> np.ndarray:
    """Poisson(1) weights (len(replicates) x n) that depend only on (seed, replicate, id), not on row order.

    The same customer gets the same weight in replicate r on every run date,
    so sums over different days add up to one bootstrap that resamples
    *customers* (a customer's days stay together: a cluster bootstrap).

    Examples
    --------
    >>> w = keyed_weights(np.array([5, 9, 7]), range(1, 3), seed=1)
    >>> bool((keyed_weights(np.array([7, 5]), range(1, 3), seed=1) == w[:, [2, 0]]).all())
    True
    """
    ids = np.asarray(ids).astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        key = _mix(ids ^ _mix(np.uint64(seed) + _GOLDEN))
        r = np.asarray(list(replicates), dtype=np.uint64)[:, None]
        bits = _mix(key[None, :] + r * _GOLDEN)
    u = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float32)


def keyed_replicate_sums(x: np.ndarray, ids: np.ndarray, replicates: int = REPLICATES,
                         seed: int = 0) -> np.ndarray:
    """Column sums of ``x`` (n customers x m): row 0 unweighted, rows 1..replicates under :func:`keyed_weights`.

    Returns
    -------
    numpy.ndarray
        (replicates + 1) x m. Sums of several days with the same ``seed`` add
        up to the sums of their pooled customer-days under customer-level weights.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    out = np.empty((replicates + 1, x.shape[1]))
    out[0] = x.sum(axis=0)
    # single precision for the replicates: half the time at the default scale, ~1e-6 relative error (the
    # intervals' own noise is ~1e-2); the plain sums stay double
    x32 = x.astype(np.float32)
    for start in range(1, replicates + 1, _CHUNK):  # a loop over chunks of replicates, not customers
        stop = min(start + _CHUNK, replicates + 1)
        out[start:stop] = keyed_weights(ids, range(start, stop), seed) @ x32
    return out
