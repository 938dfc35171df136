"""Ranking metric conventions against hand-computed examples (docs/EVALUATION.md)."""

import math

import polars as pl
import pytest

from metro_assets.monitoring.metrics import per_customer_metrics, ranking_metrics
from metro_assets.ranking.scoring import top_k


def ranked(rows):
    """rows: (customer_id, offer_id, rank)."""
    return pl.DataFrame(rows, schema=["customer_id", "offer_id", "rank"], orient="row")


def relevant(rows):
    return pl.DataFrame(rows, schema=["customer_id", "offer_id"], orient="row")


def test_one_hit_at_rank_two_of_two_relevant():
    m = ranking_metrics(ranked([(1, 7, 1), (1, 8, 2), (1, 9, 3)]), relevant([(1, 8), (1, 5)]))
    dcg = 1 / math.log2(3)
    idcg = 1 + 1 / math.log2(3)  # min(|R| = 2, k) ideal hits
    assert m["ndcg_at_10"] == pytest.approx(dcg / idcg)
    assert m["mrr_at_10"] == pytest.approx(0.5)
    assert m["precision_at_10"] == pytest.approx(0.1)  # divides by k, not by the 3 ranked
    assert m["recall_at_10"] == pytest.approx(0.5)
    assert m["redemption_rate_at_10"] == 1.0
    assert m["customers_evaluated"] == 1


def test_a_customer_without_redemptions_is_not_averaged_in():
    rows = ranked([(1, 7, 1), (2, 7, 1), (2, 8, 2)])
    m = ranking_metrics(rows, relevant([(1, 7)]), customers=pl.Series([1, 2]))
    assert m["customers_evaluated"] == 1  # customer 2 redeemed nothing: reported separately by the caller
    assert m["ndcg_at_10"] == 1.0 and m["mrr_at_10"] == 1.0 and m["recall_at_10"] == 1.0


def test_nobody_redeemed_gives_zeros_not_nan():
    m = ranking_metrics(ranked([(1, 7, 1)]), relevant([]).cast(pl.Int64))
    assert m == {"ndcg_at_10": 0.0, "mrr_at_10": 0.0, "precision_at_10": 0.0, "recall_at_10": 0.0,
                 "redemption_rate_at_10": 0.0, "customers_evaluated": 0.0}


def test_fewer_than_ten_candidates_and_a_miss():
    # customer 1: 3 candidates, hits at ranks 1 and 3, R = {a, c}; customer 2: 2 candidates, no hit, R = {z}
    rows = ranked([(1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 4, 1), (2, 5, 2)])
    per = per_customer_metrics(rows, relevant([(1, 1), (1, 3), (2, 99)]))
    one, two = per.row(0, named=True), per.row(1, named=True)
    assert one["ndcg"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))  # log2(4) = 2
    assert one["precision"] == pytest.approx(0.2) and one["recall"] == 1.0 and one["mrr"] == 1.0
    assert two["ndcg"] == 0.0 and two["mrr"] == 0.0 and two["recall"] == 0.0 and two["redeemed"] == 0.0
    m = ranking_metrics(rows, relevant([(1, 1), (1, 3), (2, 99)]))
    assert m["redemption_rate_at_10"] == 0.5 and m["precision_at_10"] == pytest.approx(0.1)


def test_ranks_beyond_k_do_not_count_and_ideal_dcg_is_capped_at_k():
    rows = ranked([(1, o, o) for o in range(1, 13)])  # 12 ranked offers
    hits = relevant([(1, o) for o in range(1, 13)])   # all 12 relevant
    per = per_customer_metrics(rows, hits, k=10).row(0, named=True)
    assert per["hits"] == 10 and per["ndcg"] == pytest.approx(1.0)  # IDCG over min(|R|, k) = 10
    assert per["recall"] == pytest.approx(10 / 12) and per["precision"] == 1.0
    late = per_customer_metrics(rows, relevant([(1, 11)]), k=10).row(0, named=True)
    assert late["hits"] == 0 and late["mrr"] == 0.0  # MRR@k is 0 without a hit in the top k


def test_duplicate_redemptions_of_one_offer_count_once():
    m = ranking_metrics(ranked([(1, 7, 1)]), relevant([(1, 7), (1, 7)]))
    assert m["recall_at_10"] == 1.0 and m["ndcg_at_10"] == 1.0


def test_ties_break_by_score_then_offer_id():
    scored = pl.DataFrame({"customer_id": [1] * 4, "offer_id": [40, 10, 30, 20], "score": [0.5, 0.2, 0.5, 0.9],
                           "product_id": [4, 1, 3, 2], "category": ["a", "b", "c", "d"]})
    top = top_k(scored, 3)
    assert top["offer_id"].to_list() == [20, 30, 40] and top["rank"].to_list() == [1, 2, 3]
    # and the tie decides a metric: the redeemed offer 40 sits at rank 3, not 2
    assert per_customer_metrics(top, relevant([(1, 40)])).row(0, named=True)["mrr"] == pytest.approx(1 / 3)
