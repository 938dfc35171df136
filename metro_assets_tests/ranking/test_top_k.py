"""The one top-k rule (serving and every evaluated policy): no product twice, a per-category limit."""

import numpy as np
import polars as pl
import pytest

from metro_assets.ranking.scoring import top_k


def greedy(scored: pl.DataFrame, k: int, per_category: int) -> dict[int, list[int]]:
    """The rule written as the obvious loop, to check the vectorised one against."""
    out = {}
    for c, rows in scored.sort("customer_id", "score", "offer_id", descending=[False, True, False]) \
            .group_by("customer_id", maintain_order=True):
        taken, products, categories = [], set(), {}
        for r in rows.iter_rows(named=True):
            if len(taken) == k or r["product_id"] in products or categories.get(r["category"], 0) >= per_category:
                continue
            taken.append(r["offer_id"])
            products.add(r["product_id"])
            categories[r["category"]] = categories.get(r["category"], 0) + 1
        out[c[0]] = taken
    return out


def test_no_product_twice_even_when_its_offers_score_best():
    # customer 1: offers 1-3 are the same product (say, Pork Chops at three discounts)
    scored = pl.DataFrame({"customer_id": [1] * 6, "offer_id": [1, 2, 3, 4, 5, 6],
                           "product_id": [7, 7, 7, 8, 9, 10], "category": ["meat", "meat", "meat", "dairy", "a", "b"],
                           "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]})
    top = top_k(scored, 4, max_per_category=None)
    assert top["offer_id"].to_list() == [1, 4, 5, 6] and top["rank"].to_list() == [1, 2, 3, 4]


def test_at_most_max_per_category_and_the_next_best_fill_the_list():
    scored = pl.DataFrame({"customer_id": [1] * 6, "offer_id": range(1, 7), "product_id": range(11, 17),
                           "category": ["meat"] * 4 + ["dairy", "fruit"], "score": [0.9, 0.8, 0.7, 0.6, 0.2, 0.1]})
    assert top_k(scored, 5, max_per_category=2)["offer_id"].to_list() == [1, 2, 5, 6]
    assert top_k(scored, 5, max_per_category=3)["offer_id"].to_list() == [1, 2, 3, 5, 6]
    assert top_k(scored, 5, max_per_category=None)["offer_id"].to_list() == [1, 2, 3, 4, 5]


def test_the_vectorised_rule_is_the_greedy_loop_on_random_pools():
    rng = np.random.default_rng(3)
    n = 3000
    product = rng.integers(0, 40, n)
    scored = pl.DataFrame({"customer_id": rng.integers(0, 60, n), "offer_id": np.arange(n),
                           "product_id": product, "category": (product % 5).astype(str),  # a product has one category
                           "score": rng.random(n).round(2)})  # rounded: many ties, broken by offer_id
    top = top_k(scored, 10, max_per_category=3)
    got = {c: g.sort("rank")["offer_id"].to_list() for (c,), g in top.group_by("customer_id")}
    assert got == greedy(scored, 10, 3)
    per = top.group_by("customer_id", "category").agg(n=pl.len(), products=pl.col("product_id").n_unique())
    assert per["n"].max() <= 3 and (per["n"] == per["products"]).all()


def test_items_supply_products_and_categories_and_are_required():
    scored = pl.DataFrame({"customer_id": [1, 1, 1], "offer_id": [1, 2, 3], "score": [0.3, 0.2, 0.1]})
    items = pl.DataFrame({"offer_id": [1, 2, 3], "product_id": [5, 5, 6], "category": ["a", "a", "a"]})
    top = top_k(scored, 10, items=items)
    assert top["offer_id"].to_list() == [1, 3] and top.columns == ["customer_id", "offer_id", "score", "rank"]
    with pytest.raises(ValueError, match="items=offer_items"):
        top_k(scored, 10)
