"""Bootstrap intervals over customers: coverage, pairing, determinism."""

import numpy as np

from metro_assets.monitoring.bootstrap import mean_ci, ratio_ci, replicate_sums


def test_the_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for i in range(200):
        x = rng.exponential(1.0, size=(400, 1))  # skewed, like redemptions per customer
        _, low, high = mean_ci(x, replicates=200, seed=i)
        covered += low[0] <= 1.0 <= high[0]
    assert 0.89 <= covered / 200 <= 0.99


def test_paired_differences_are_much_tighter_than_the_two_intervals():
    rng = np.random.default_rng(1)
    base = rng.exponential(1.0, 3000)
    a, b = base + rng.normal(0.05, 0.05, 3000), base
    point, low, high = mean_ci(np.column_stack([a, b, a - b]), seed=7)
    assert low[2] > 0  # the paired difference is clearly positive
    assert low[0] < high[1]  # while the two intervals overlap
    assert (high[2] - low[2]) < 0.2 * (high[0] - low[0])


def test_ratios_and_determinism():
    rng = np.random.default_rng(2)
    num, den = rng.random((1000, 2)), rng.random((1000, 1)) + 1.0
    point, low, high = ratio_ci(num, den, seed=3)
    assert np.allclose(point, num.sum(axis=0) / den.sum())
    assert ((low < point) & (point < high)).all()
    again = ratio_ci(num, den, seed=3)
    assert np.array_equal(low, again[1]) and np.array_equal(high, again[2])
    # the same seed and customers: the same weights, whatever the columns (so separate calls stay paired)
    one = replicate_sums(num[:, :1], 50, seed=9)
    both = replicate_sums(num, 50, seed=9)
    assert np.allclose(one[:, 0], both[:, 0])
