"""Next-purchase metrics, leave-last-basket-out, and the two baselines SASRec must beat (no torch here).

Protocol: for each customer with purchases on two days or more, the items of
the last day are held out; a policy ranks every product from what came
before. Each held-out item is a next-purchase target: Hit@k is 1 when it is in
the top k, NDCG@k is 1 / log2(rank + 1) (one relevant item per target, so the
ideal DCG is 1). Both are averaged over a customer's targets, then over
customers (a big basket does not weigh more than a small one).

Examples
--------
>>> import polars as pl
>>> top = pl.DataFrame({"customer_id": [1, 1, 2, 2], "item": [5, 7, 5, 7], "rank": [1, 2, 1, 2]})
>>> targets = pl.DataFrame({"customer_id": [1, 1, 2], "item": [7, 9, 8]})
>>> ranking_metrics(top, targets, k=2)  # customer 1: (1 + 0) / 2 hits; customer 2: none
{'hit_at_k': 0.25, 'ndcg_at_k': 0.1577, 'customers': 2, 'targets': 3}
"""

from __future__ import annotations

import numpy as np
import polars as pl


def ranking_metrics(top: pl.DataFrame, targets: pl.DataFrame, k: int = 10) -> dict:
    """Hit@k and NDCG@k of ranked lists ``top`` (customer_id, item, rank 1..) for ``targets`` (customer_id, item).

    Customers of ``targets`` without a list count as misses.
    """
    if targets.height == 0:
        return {"hit_at_k": None, "ndcg_at_k": None, "customers": 0, "targets": 0}
    ranks = top.filter(pl.col("rank") <= k).select("customer_id", "item", "rank")
    joined = targets.select("customer_id", "item").join(ranks, on=["customer_id", "item"], how="left")
    per_customer = joined.group_by("customer_id").agg(
        hit=pl.col("rank").is_not_null().mean(),
        ndcg=(1.0 / (pl.col("rank").cast(pl.Float64) + 1.0).log(2)).fill_null(0.0).mean(),
    )
    return {
        "hit_at_k": round(float(per_customer["hit"].mean()), 4),
        "ndcg_at_k": round(float(per_customer["ndcg"].mean()), 4),
        "customers": per_customer.height,
        "targets": targets.height,
    }


def popularity_items(events: pl.DataFrame, k: int) -> np.ndarray:
    """The ``k`` items bought by the most (customer, day) events; ties: lower item first."""
    counts = events.group_by("item").len().sort(["len", "item"], descending=[True, False])
    return counts["item"].head(k).to_numpy()


def popularity_top(events: pl.DataFrame, customers: pl.Series, k: int = 10) -> pl.DataFrame:
    """Popularity: the same top ``k`` items for every customer in ``customers``."""
    items = popularity_items(events, k)
    lists = pl.DataFrame({"item": items, "rank": np.arange(1, len(items) + 1, dtype=np.int64)})
    return pl.DataFrame({"customer_id": customers.unique()}).join(lists, how="cross")


def buy_again_top(events: pl.DataFrame, customers: pl.Series, k: int = 10) -> pl.DataFrame:
    """Buy-again: the customer's own products, most often bought first (ties: most recent, then lower item);
    slots left over go to the most popular items they have not bought."""
    who = pl.DataFrame({"customer_id": customers.unique()})
    own = (events.join(who, on="customer_id").group_by("customer_id", "item")
           .agg(n=pl.len().cast(pl.Int64), last_day=pl.col("day").max()))
    popular = pl.DataFrame({"item": popularity_items(events, k), "fill": np.arange(k, dtype=np.int64)})
    filler = who.join(popular, how="cross").join(own.select("customer_id", "item"),
                                                on=["customer_id", "item"], how="anti")
    # own products first (group 0), then the popular fill (group 1)
    ranked = pl.concat([
        own.select("customer_id", "item", group=pl.lit(0), a=-pl.col("n"),
                   b=-pl.col("last_day").cast(pl.Int64), c=pl.col("item")),
        filler.select("customer_id", "item", group=pl.lit(1), a=pl.col("fill"), b=pl.lit(0, pl.Int64),
                      c=pl.col("item")),
    ])
    ranked = ranked.sort("customer_id", "group", "a", "b", "c").with_columns(
        rank=pl.int_range(1, pl.len() + 1).over("customer_id"))
    return ranked.filter(pl.col("rank") <= k).select("customer_id", "item", "rank")
