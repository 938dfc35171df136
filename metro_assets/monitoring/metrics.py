"""Ranking metrics at k, vectorised over customers, with no Dagster inside.

Conventions (docs/EVALUATION.md, DESIGN.md):

* A ranking is each customer's list of offers with ranks 1..n (n may be < k:
  a small pool). Only ranks <= k count.
* Metrics average over the *evaluated* customers: those with at least one
  relevant offer (a redemption in the label window). Customers without one
  are not averaged in; callers report how many there were.
* NDCG@k: binary gain, discount log2(rank + 1), ideal DCG over min(|R|, k)
  relevant offers. MRR@k: 1 / rank of the first hit, 0 without a hit.
  Precision@k divides the hits by k (even when fewer than k were ranked),
  recall@k by |R|. Redemption rate@k: share of customers with a hit.
* Rankings come from :func:`metro_assets.ranking.scoring.top_k` (ties: lower offer_id
  first; one offer per product, a per-category limit), the same rule as serving.
* These metrics grade a ranking against the offers the customer redeemed, and
  only offers the legacy policy showed can be redeemed: they measure agreement
  with the legacy policy, not what a ranking causes (see :mod:`.evaluation`).

Examples
--------
>>> import polars as pl
>>> ranked = pl.DataFrame({"customer_id": [1, 1, 1], "offer_id": [7, 8, 9], "rank": [1, 2, 3]})
>>> relevant = pl.DataFrame({"customer_id": [1, 1], "offer_id": [8, 5]})
>>> m = ranking_metrics(ranked, relevant, k=10)
>>> round(m["ndcg_at_10"], 4), m["mrr_at_10"], m["precision_at_10"], m["recall_at_10"]
(0.3869, 0.5, 0.1, 0.5)
"""

from __future__ import annotations

import numpy as np
import polars as pl

K = 10

#: The ranking metrics :func:`ranking_metrics` returns, besides ``customers_evaluated``.
RANKING_METRICS = ("ndcg_at_10", "mrr_at_10", "precision_at_10", "recall_at_10", "redemption_rate_at_10")


def per_customer_metrics(ranked: pl.DataFrame, relevant: pl.DataFrame, customers: pl.Series | None = None,
                         k: int = K) -> pl.DataFrame:
    """One row of metrics per evaluated customer.

    Parameters
    ----------
    ranked : polars.DataFrame
        ``customer_id``, ``offer_id``, ``rank`` (1 = best); ranks above ``k`` are ignored.
    relevant : polars.DataFrame
        ``customer_id``, ``offer_id`` of the redemptions in the label window (duplicates allowed).
    customers : polars.Series, optional
        The customers to evaluate; default every customer with a relevant offer.
        Customers given here without a relevant offer are dropped (they are not evaluated).
    k : int
        The cut-off.

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``relevant``, ``hits``, ``ndcg``, ``mrr``, ``precision``, ``recall``, ``redeemed``.
    """
    rel = relevant.select("customer_id", "offer_id").unique()
    counts = rel.group_by("customer_id").agg(relevant=pl.len())
    if customers is not None:
        counts = counts.join(pl.DataFrame({"customer_id": customers.cast(counts["customer_id"].dtype)}).unique(),
                             on="customer_id", how="semi")
    hits = (
        ranked.filter(pl.col("rank") <= k)
        .select("customer_id", "offer_id", pl.col("rank").cast(pl.Int64))
        .join(rel, on=["customer_id", "offer_id"], how="semi")
        .group_by("customer_id")
        .agg(hits=pl.len(), dcg=(1.0 / (pl.col("rank") + 1).log(2)).sum(), first=pl.col("rank").min())
    )
    ideal = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))]  # ideal[m]: DCG of m hits on top
    out = counts.join(hits, on="customer_id", how="left").with_columns(
        hits=pl.col("hits").fill_null(0), dcg=pl.col("dcg").fill_null(0.0)
    )
    idcg = pl.Series(ideal[np.minimum(out["relevant"].to_numpy(), k)])
    return out.with_columns(idcg=idcg).select(
        "customer_id",
        "relevant",
        "hits",
        ndcg=pl.col("dcg") / pl.col("idcg"),
        mrr=(1.0 / pl.col("first")).fill_null(0.0),
        precision=pl.col("hits") / k,
        recall=pl.col("hits") / pl.col("relevant"),
        redeemed=(pl.col("hits") > 0).cast(pl.Float64),
    ).sort("customer_id")


def ranking_metrics(ranked: pl.DataFrame, relevant: pl.DataFrame, customers: pl.Series | None = None,
                    k: int = K) -> dict[str, float]:
    """NDCG, MRR, precision, recall and redemption rate at ``k``, averaged over evaluated customers.

    See :func:`per_customer_metrics` for the arguments. With no evaluated
    customer every metric is 0.0 and ``customers_evaluated`` is 0.
    """
    per = per_customer_metrics(ranked, relevant, customers, k)
    n = per.height
    means = per.select(pl.col("ndcg", "mrr", "precision", "recall", "redeemed").mean()).row(0) if n else (0.0,) * 5
    return {**{name: float(v) for name, v in zip(RANKING_METRICS, means)}, "customers_evaluated": float(n)}
