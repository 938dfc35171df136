"""The allocation step: per-offer caps honoured across all customers (random inputs), per-customer limits,
no negative-uplift offer under the margin objective, the value the caps cost."""

import numpy as np
import polars as pl
import pytest

from metro_assets.ranking.allocation import AllocationError, _check, allocate, pair_value, usage
from metro_assets.ranking.scoring import top_k


def _random_pairs(rng, customers=300, offers=40, per_customer=25):
    c = np.repeat(np.arange(1, customers + 1), per_customer)
    o = np.concatenate([rng.choice(offers, per_customer, replace=False) + 1 for _ in range(customers)])
    product = o % (offers - 5) + 100  # a few offers share a product
    return pl.DataFrame({
        "customer_id": c, "offer_id": o, "product_id": product, "category": (product % 6).astype(str),
        "p_redeem": rng.beta(1.2, 12, len(c)), "discount": rng.uniform(0.2, 3.0, len(c)),
        "value": rng.normal(0.05, 0.1, len(c)),
    })


def _random_caps(rng, offers=40):
    ids = np.arange(1, offers + 1)
    red = np.where(rng.random(offers) < 0.5, rng.uniform(0, 8, offers), np.nan)
    bud = np.where(rng.random(offers) < 0.4, rng.uniform(0, 10, offers), np.nan)
    return pl.DataFrame({"offer_id": ids, "remaining_redemptions": red, "remaining_budget": bud}).with_columns(
        pl.col("remaining_redemptions", "remaining_budget").fill_nan(None))


@pytest.mark.parametrize("seed", range(12))
def test_caps_are_never_exceeded_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    pairs, caps = _random_pairs(rng), _random_caps(rng)
    out = allocate(pairs, k=10, max_per_category=3, caps=caps, drop_below=0.0)
    use = usage(out.chosen).join(caps, on="offer_id")
    assert (use["used_redemptions"] <= use["remaining_redemptions"] + 1e-9).fill_null(True).all()
    assert (use["used_budget"] <= use["remaining_budget"] + 1e-9).fill_null(True).all()
    per = out.chosen.group_by("customer_id").agg(n=pl.len(), products=pl.col("product_id").n_unique(),
                                                 worst=pl.col("category").value_counts().struct.field("count").max())
    assert per["n"].max() <= 10 and (per["n"] == per["products"]).all() and per["worst"].max() <= 3
    assert (out.chosen["value"] > 0).all()
    assert out.value <= out.value_unconstrained + 1e-12 and out.value_lost >= -1e-12
    # the caps that bind are reported, with what was left and what is used
    assert set(out.binding["offer_id"]) <= set(caps["offer_id"])
    if out.binding.height:
        assert out.value_lost > 0 and (out.binding["pairs_dropped"] > 0).all()
    # ranks run 1..n per customer, best value first
    ranks = out.chosen.sort("customer_id", "rank")
    assert (ranks.group_by("customer_id").agg(ok=(pl.col("value").diff().fill_null(0) <= 1e-15).all())["ok"]).all()


def test_without_caps_the_allocation_is_the_top_k():
    rng = np.random.default_rng(1)
    pairs = _random_pairs(rng)
    out = allocate(pairs, k=10, max_per_category=3)
    expected = top_k(pairs, 10, 3, score="value")
    assert out.chosen.sort("customer_id", "rank").equals(expected.sort("customer_id", "rank"))
    assert out.value_lost == 0 and out.binding.height == 0


def test_a_binding_cap_goes_to_the_densest_customers_and_others_take_their_next_best():
    pairs = pl.DataFrame({
        "customer_id": [1, 1, 2, 2, 3, 3], "offer_id": [7, 8, 7, 8, 7, 8], "product_id": [70, 80] * 3,
        "category": ["a", "b"] * 3, "value": [0.5, 0.1, 0.45, 0.3, 0.4, 0.05],
        "p_redeem": [0.5, 0.1, 0.3, 0.2, 0.2, 0.1], "discount": [1.0] * 6})
    caps = pl.DataFrame({"offer_id": [7], "remaining_redemptions": [0.55], "remaining_budget": [None]},
                        schema={"offer_id": pl.Int64, "remaining_redemptions": pl.Float64,
                                "remaining_budget": pl.Float64})
    out = allocate(pairs, k=1, max_per_category=3, caps=caps)
    got = dict(zip(out.chosen["customer_id"], out.chosen["offer_id"]))
    # densities of offer 7: 1.0 (c1), 1.5 (c2), 2.0 (c3): c3 and c2 fit (0.5 <= 0.55), c1 falls back to offer 8
    assert got == {1: 8, 2: 7, 3: 7}
    assert out.binding.row(0, named=True)["offer_id"] == 7
    np.testing.assert_allclose(out.value_lost, 0.5 - 0.1)


def test_a_money_budget_binds_like_a_redemption_cap():
    pairs = pl.DataFrame({"customer_id": [1, 2], "offer_id": [7, 7], "product_id": [70, 70], "category": ["a", "a"],
                          "value": [0.2, 0.2], "p_redeem": [0.5, 0.5], "discount": [4.0, 4.0]})
    caps = pl.DataFrame({"offer_id": [7], "remaining_redemptions": [None], "remaining_budget": [3.0]},
                        schema={"offer_id": pl.Int64, "remaining_redemptions": pl.Float64,
                                "remaining_budget": pl.Float64})
    out = allocate(pairs, k=10, caps=caps)
    assert out.chosen.height == 1 and out.binding["cap"].to_list() == ["budget"]
    exhausted = caps.with_columns(remaining_budget=pl.lit(0.0))
    assert allocate(pairs, k=10, caps=exhausted).chosen.height == 0


def test_the_margin_objective_never_shows_a_negative_value():
    v = pair_value("incremental_margin", pl.col("p"), pl.col("u"), pl.col("g"), pl.col("m"), pl.col("d"))
    x = pl.DataFrame({"p": [0.1, 0.1], "u": [0.05, -0.01], "g": [4.0, 4.0], "m": [0.3, 0.3], "d": [0.2, 0.2]})
    np.testing.assert_allclose(x.select(v).to_series().to_numpy(), [0.05 * 1.2 - 0.02, -0.01 * 1.2 - 0.02])
    with pytest.raises(ValueError, match="objective"):
        pair_value("profit", pl.col("p"), pl.col("u"), pl.col("g"), pl.col("m"), pl.col("d"))


def test_the_check_catches_an_overflow():
    chosen = pl.DataFrame({"customer_id": [1, 2], "offer_id": [7, 7], "product_id": [70, 70], "category": ["a", "a"],
                           "p_redeem": [0.5, 0.5], "discount": [1.0, 1.0], "rank": [1, 1]})
    caps = pl.DataFrame({"offer_id": [7], "remaining_redemptions": [0.9], "remaining_budget": [None]},
                        schema={"offer_id": pl.Int64, "remaining_redemptions": pl.Float64,
                                "remaining_budget": pl.Float64})
    with pytest.raises(AllocationError, match="offer 7"):
        _check(chosen, caps, 10, 3)
