"""PSI as docs/DRIFT.md defines it: quantile bins from the baseline, open outer bins, smoothing."""

import math

import numpy as np
import pytest

from metro_assets.monitoring.psi import bin_shares, psi, psi_categorical, quantile_edges, verdict


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(5)


def test_identical_distributions_have_zero_psi(rng):
    x = rng.gamma(2.0, 50.0, 5_000)
    assert psi(x, x) == 0.0


@pytest.mark.parametrize("transform", [lambda v: v * 1000.0, lambda v: v / 7.0 + 3.0, np.log1p, np.sqrt])
def test_rescaling_a_feature_leaves_psi_unchanged(rng, transform):
    base, cur = rng.gamma(2.0, 50.0, 5_000), rng.gamma(2.4, 50.0, 4_000)
    assert psi(transform(base), transform(cur)) == psi(base, cur)
    assert psi(base, cur) > 0.01


def test_a_hand_computed_value():
    base = np.arange(1, 11, dtype=float)                # edges at 1..9 (observed deciles): ten bins
    assert quantile_edges(base).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    cur = np.array([1.0] * 5 + [10.0] * 5)              # half in the first bin, half in the last
    e = np.full(10, 0.1)
    a = np.array([0.5] + [1e-4] * 8 + [0.5])
    a = a / a.sum()                                      # empty bins get epsilon, then renormalise
    expected = float(np.sum((a - e) * np.log(a / e)))
    assert psi(base, cur) == pytest.approx(expected)


def test_open_outer_bins_take_values_outside_the_baseline_range():
    edges = quantile_edges(np.arange(1, 11, dtype=float))
    shares = bin_shares(np.array([-1e9, 0.5, 1.0, 9.5, 1e9]), edges, missing_bin=False)
    assert shares[0] == pytest.approx(0.6) and shares[-1] == pytest.approx(0.4)  # a value on an edge goes below


def test_missing_values_get_their_own_bin(rng):
    base = rng.normal(size=1000)
    cur = np.r_[rng.normal(size=700), np.full(300, np.nan)]
    value = psi(base, cur)
    assert math.isfinite(value) and value > 0.25  # 30% missing is a major shift
    assert psi(np.r_[base, np.nan], np.r_[base, np.nan]) == 0.0


def test_constant_or_disjoint_features_stay_finite():
    assert psi(np.zeros(100), np.zeros(50)) == 0.0
    value = psi(np.zeros(100), np.ones(100))
    assert math.isfinite(value) and value > 1


def test_empty_sides_are_refused():
    with pytest.raises(ValueError, match="both sides"):
        psi(np.array([]), np.array([1.0]))


def test_categorical_psi_has_an_other_bin():
    assert psi_categorical(["a", "b", "a", "b"], ["b", "a", "b", "a"]) == 0.0
    unseen = psi_categorical(["a"] * 50 + ["b"] * 50, ["a"] * 50 + ["c"] * 50)
    moved = psi_categorical(["a"] * 50 + ["b"] * 50, ["a"] * 50 + ["a"] * 50)
    assert math.isfinite(unseen) and unseen > 0.25 and math.isfinite(moved)


def test_verdicts_follow_the_thresholds():
    assert [verdict(v) for v in (0.0, 0.099, 0.1, 0.2499, 0.25, 3.0)] == [
        "stable", "stable", "moderate", "moderate", "major", "major"]
    assert verdict(0.15, moderate=0.2, major=0.3) == "stable"
