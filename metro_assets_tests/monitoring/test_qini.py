"""Qini and AUUC: known answers on hand-made examples, and the two estimates agree on a big randomised log."""

import numpy as np

from metro_assets.monitoring import qini


def test_known_answer_against_the_truth():
    # units ranked 4 > 3 > 2 > 1 with true uplift .4 .1 -.2 .3: c = cumsum / 4 = .1 .125 .075 .15
    score, tau = np.array([4.0, 3, 2, 1]), np.array([0.4, 0.1, -0.2, 0.3])
    np.testing.assert_allclose(qini.curve_true(score, tau), [0.1, 0.125, 0.075, 0.15])
    # AUUC = mean(c) = .1125; random line n/N x .15 = .0375 .075 .1125 .15; Qini = mean(c - line) = .01875
    assert np.isclose(qini.auuc_true(score, tau), 0.1125)
    assert np.isclose(qini.qini_true(score, tau), 0.01875)
    # the best order beats it, the reverse is below the random line
    assert qini.qini_true(tau, tau) > 0.01875 > 0 > qini.qini_true(-tau, tau)


def test_known_answer_on_a_randomised_log():
    # six units, best first: T1 C0 T0 C1 T1 C0
    score = np.array([6.0, 5, 4, 3, 2, 1])
    treated = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    y = np.array([1, 0, 0, 1, 1, 0])
    # n=1: no control yet -> 0; n=2: 1 - 0 x 1/1 = 1; n=3: 1 - 0 = 1; n=4: 1 - 1 x 2/2 = 0;
    # n=5: 2 - 1 x 3/2 = .5; n=6: 2 - 1 x 3/3 = 1; scaled by N_T = 3
    expected = np.array([0, 1, 1, 0, 0.5, 1]) / 3
    np.testing.assert_allclose(qini.curve_logged(score, treated, y), expected)
    x = np.arange(1, 7) / 6
    assert np.isclose(qini.qini_logged(score, treated, y), np.mean(expected - x * expected[-1]))


def test_the_logged_estimate_tracks_the_truth_on_a_big_randomised_log():
    rng = np.random.default_rng(0)
    n = 200_000
    x = rng.normal(size=n)
    base, tau = 0.2 + 0.05 * np.tanh(x), 0.08 * x.clip(-1, 2)
    treated = rng.random(n) < 0.5
    y = rng.random(n) < np.clip(base + treated * tau, 0, 1)
    good, noise = x, rng.normal(size=n)
    assert abs(qini.qini_logged(good, treated, y) - qini.qini_true(good, tau)) < 0.15 * qini.qini_true(good, tau)
    assert abs(qini.qini_logged(noise, treated, y)) < 0.1 * qini.qini_true(good, tau)
    xs, cs = qini.downsample(qini.curve_true(good, tau), 50)
    assert xs[0] == 0 and xs[-1] == 1 and len(xs) == len(cs) <= 51
