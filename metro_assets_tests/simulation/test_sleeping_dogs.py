"""A sleeping dog's lost trips are a customer-level effect: charged once per list, as the world deters once."""

import numpy as np
import polars as pl

from metro_assets.monitoring.evaluation import customer_values
from metro_assets.simulation import oracle


def test_notice_any_is_the_worlds_noticing_rule():
    """Monte Carlo of the world's rule (one channel per list, each slot noticed on its own) agrees."""
    rng = np.random.default_rng(3)
    for positions in ([1], [1, 2, 3], list(range(1, 11)), [4, 9]):
        n = 200_000
        channel = rng.choice(3, size=n, p=oracle.CHANNEL_SHARES)
        att = oracle.position_attention(np.array(positions))[None, :] * oracle.CHANNEL_ATTENTION[channel][:, None]
        seen = (rng.random((n, len(positions))) < att).any(axis=1).mean()
        got = oracle.notice_any(np.array(positions), np.zeros(len(positions), dtype=int))[0]
        assert abs(got - seen) < 0.004, positions
    # more offers: more chance to deter, never more than once
    ten = oracle.notice_any(np.arange(1, 11), np.zeros(10, dtype=int))[0]
    assert oracle.MEAN_CHANNEL_ATTENTION < ten < 1.0


def _truth(n_offers: int, dog: bool) -> pl.DataFrame:
    return pl.DataFrame({
        "customer_id": [1] * n_offers, "offer_id": list(range(1, n_offers + 1)),
        "p_redeem": [0.02] * n_offers, "p_base": [0.01] * n_offers, "uplift": [-0.005 if dog else 0.01] * n_offers,
        "spend_effect": [-0.01 if dog else 0.1] * n_offers, "lost_spend": [40.0 if dog else 0.0] * n_offers,
        "trip_margin_rate": [0.25] * n_offers, "margin": [0.3] * n_offers, "discount": [0.5] * n_offers,
    })


def test_lost_trips_count_once_per_customer_whatever_the_list_length():
    customers = pl.DataFrame({"customer_id": [1]})
    values = {}
    for n in (1, 10):
        ranked = pl.DataFrame({"customer_id": [1] * n, "offer_id": list(range(1, n + 1)), "rank": list(range(1, n + 1))})
        dog = customer_values(ranked, _truth(n, True), customers).row(0, named=True)
        plain = customer_values(ranked, _truth(n, False), customers).row(0, named=True)
        att = oracle.position_attention(np.arange(1, n + 1))
        noticed = oracle.notice_any(np.arange(1, n + 1), np.zeros(n, dtype=int))[0]
        product = float((att * (-0.01 * 0.3 - 0.02 * 0.5)).sum())
        np.testing.assert_allclose(dog["margin"], product - noticed * 40.0 * 0.25)
        np.testing.assert_allclose(dog["revenue"], float((att * -0.01).sum()) - noticed * 40.0)
        np.testing.assert_allclose(dog["dogs_reached"], noticed)
        assert plain["dogs_reached"] == 0 and plain["margin"] > 0
        values[n] = dog
    # ten offers deter at most once: the lost spend grows from 0.885 to < 1 trip-week, not ten-fold
    lost = {n: values[n]["revenue"] for n in values}
    assert lost[10] > 1.3 * lost[1]
