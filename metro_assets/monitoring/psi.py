"""The Population Stability Index, as docs/DRIFT.md defines it, with no Dagster inside.

``PSI = sum((a - e) * ln(a / e))`` over bins, where ``e`` and ``a`` are the
shares of the baseline ("expected") and current ("actual") values per bin.

* Numeric features: inner bin edges are the baseline's quantiles, taken as
  observed values (``inverted_cdf``) and deduplicated, with open outer bins
  (-inf, e1], ..., (ek, +inf). A value equal to an edge falls in the bin
  below it. Missing values (None/NaN) get a bin of their own when either
  side has any.
* Categorical features: one bin per baseline value, plus an "other" bin for
  values the baseline never had.
* Shares are counts / N; bins with no value get ``epsilon`` and each side is
  renormalised to sum to 1, so PSI stays finite.

Because the bins are quantiles of observed values, PSI depends only on the
order of the values: rescaling a feature (any strictly increasing map, such
as a change of units) leaves it exactly unchanged. The spec's
``np.histogram(density=True)`` does not have this property.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> base = rng.normal(size=20_000)
>>> round(psi(base, rng.normal(size=20_000)), 3) < 0.01
True
>>> psi(base, rng.normal(size=20_000) + 1.0) > 0.25
True
>>> psi(base, base * 1000) == psi(base * 0.001, base)
True
"""

from __future__ import annotations

import numpy as np

BINS = 10
EPSILON = 1e-4


def quantile_edges(baseline: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Inner bin edges: the baseline's observed values at quantiles 1/bins .. (bins-1)/bins, deduplicated."""
    values = np.asarray(baseline, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros(0)
    qs = np.arange(1, bins) / bins
    return np.unique(np.quantile(values, qs, method="inverted_cdf"))


def bin_shares(values: np.ndarray, edges: np.ndarray, missing_bin: bool) -> np.ndarray:
    """Share of ``values`` per bin (open outer bins; NaN in the last bin when ``missing_bin``)."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    idx = np.searchsorted(edges, values[finite], side="left")  # v == edge -> the bin below it
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    if missing_bin:
        counts = np.r_[counts, (~finite).sum()]
    return counts / max(values.size, 1)


def smooth(shares: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Give empty bins ``epsilon`` and renormalise to 1."""
    shares = np.where(shares > 0, shares, epsilon)
    return shares / shares.sum()


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> float:
    """PSI of two share vectors over the same bins (each smoothed first)."""
    e, a = smooth(np.asarray(expected, float), epsilon), smooth(np.asarray(actual, float), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(baseline: np.ndarray, current: np.ndarray, bins: int = BINS, epsilon: float = EPSILON) -> float:
    """PSI of a numeric feature: ``current`` against ``baseline`` (quantile bins from the baseline).

    Raises
    ------
    ValueError
        When either side has no value at all.
    """
    baseline, current = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    if baseline.size == 0 or current.size == 0:
        raise ValueError("PSI needs values on both sides (baseline and current)")
    edges = quantile_edges(baseline, bins)
    missing = bool((~np.isfinite(baseline)).any() or (~np.isfinite(current)).any())
    return psi_from_shares(bin_shares(baseline, edges, missing), bin_shares(current, edges, missing), epsilon)


def psi_categorical(baseline, current, epsilon: float = EPSILON) -> float:
    """PSI of a categorical feature: one bin per baseline value, plus "other/unseen" (None is a value).

    Examples
    --------
    >>> psi_categorical(["a", "a", "b", "b"], ["a", "b", "a", "b"])
    0.0
    >>> psi_categorical(["a", "b"], ["c", "c"]) > 1  # all unseen values land in "other"
    True
    """
    base = np.asarray(baseline, dtype=object).astype(str)
    cur = np.asarray(current, dtype=object).astype(str)
    if base.size == 0 or cur.size == 0:
        raise ValueError("PSI needs values on both sides (baseline and current)")
    categories, b_idx = np.unique(base, return_inverse=True)
    other = len(categories)
    pos = np.minimum(np.searchsorted(categories, cur), other - 1)
    c_idx = np.where(categories[pos] == cur, pos, other)
    e = np.bincount(b_idx, minlength=other + 1) / base.size
    a = np.bincount(c_idx, minlength=other + 1) / cur.size
    return psi_from_shares(e, a, epsilon)


def verdict(value: float, moderate: float = 0.1, major: float = 0.25) -> str:
    """``stable`` below ``moderate``, ``moderate`` below ``major``, else ``major`` (retrain recommended)."""
    if value >= major:
        return "major"
    return "moderate" if value >= moderate else "stable"
