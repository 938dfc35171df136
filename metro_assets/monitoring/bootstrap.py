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
