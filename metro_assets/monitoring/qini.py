"""Qini and AUUC: how well a ranking puts what an offer *causes* first.

Units (customer x offer pairs) are ranked by a score, best first (ties: the
order given). The curve's value at the top ``n`` of ``N`` units is the
incremental outcome per unit of the whole population when exactly those
``n`` are treated:

* **against the truth** (simulated data: every unit's true uplift ``tau``):
  ``c(n) = sum_{i <= n} tau_i / N``.
* **on a randomised log** (what a retailer can compute: treated units with
  their outcome, control units with theirs): Radcliffe's Qini numerator
  ``Q(n) = R_T(n) - R_C(n) x N_T(n) / N_C(n)`` (R: outcomes, N: units of each
  group among the top n; 0 while no control unit is in), scaled by the
  treated units of the whole log, ``c(n) = Q(n) / N_T(N)``: with a constant
  treated share both estimate the same figure.

``auuc`` is the area under the curve, ``mean_n c(n)`` (x = n/N from 1/N to
1); ``qini`` the area between the curve and the random ranking's straight
line, ``mean_n [c(n) - (n / N) c(N)]``: 0 for a random ranking, positive
when the ranking puts the units with the largest uplift first. Both are in
units of the outcome per unit (e.g. incremental purchases per pair).

Examples
--------
>>> import numpy as np
>>> tau = np.array([0.4, 0.1, -0.2, 0.3])
>>> round(auuc_true(np.array([4.0, 3, 2, 1]), tau), 6), round(qini_true(np.array([4.0, 3, 2, 1]), tau), 6)
(0.1125, 0.01875)
"""

from __future__ import annotations

import numpy as np


def _order(score: np.ndarray) -> np.ndarray:
    """Best score first; ties keep the given order (a stable sort)."""
    return np.argsort(-np.asarray(score, dtype=float), kind="stable")


def curve_true(score: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """c(n), n = 1..N, against the true uplift."""
    tau = np.asarray(tau, dtype=float)
    return np.cumsum(tau[_order(score)]) / max(len(tau), 1)


def curve_logged(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """c(n), n = 1..N, on a randomised log (``treated``: bool, ``outcome``: 0/1 or any number)."""
    o = _order(score)
    t = np.asarray(treated, dtype=bool)[o]
    y = np.asarray(outcome, dtype=float)[o]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    r_t, r_c = np.cumsum(np.where(t, y, 0.0)), np.cumsum(np.where(t, 0.0, y))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n_c > 0, r_t - r_c * n_t / n_c, 0.0)
    return q / max(int(t.sum()), 1)


def areas(curve: np.ndarray) -> tuple[float, float]:
    """(qini, auuc) of a curve: area between it and the random line, area under it."""
    n = len(curve)
    if n == 0:
        return 0.0, 0.0
    x = np.arange(1, n + 1) / n
    return float(np.mean(curve - x * curve[-1])), float(np.mean(curve))


def qini_true(score: np.ndarray, tau: np.ndarray) -> float:
    """The Qini coefficient of ``score`` against the true uplift."""
    return areas(curve_true(score, tau))[0]


def auuc_true(score: np.ndarray, tau: np.ndarray) -> float:
    """The area under the uplift curve of ``score`` against the true uplift."""
    return areas(curve_true(score, tau))[1]


def qini_logged(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> float:
    """The Qini coefficient of ``score`` on a randomised log."""
    return areas(curve_logged(score, treated, outcome))[0]


def downsample(curve: np.ndarray, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(x, c) at ``points`` evenly spaced fractions, for a plot (x from 0: the curve starts at 0)."""
    n = len(curve)
    if n == 0:
        return np.zeros(1), np.zeros(1)
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
    return np.r_[0.0, (idx + 1) / n], np.r_[0.0, curve[idx]]
