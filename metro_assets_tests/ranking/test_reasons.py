"""Model contributions and the reasons built from them (issue 16, items 3-4)."""

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from metro_assets.checking import evaluate_checks
from metro_assets.features.compute import stored_matrix
from metro_assets.ranking import models
from metro_assets.ranking.checks import RECOMMENDATION_CHECKS
from metro_assets.ranking.reasons import FALLBACKS, GROUPS, MAX_REASONS, TEMPLATES, reasons_for, reasons_from
from metro_assets.ranking.scoring import offer_items, score_pool, selected_model, top_k
from metro_assets.ranking.training import as_matrix
from metro_assets.warehouse import ensure_schema, replace_partitions
from metro_assets_tests.conftest import HISTORY_END
from metro_assets_tests.pipeline import writable_copy

DAY = HISTORY_END  # 2025-09-26
KINDS = ["logistic_regression", "lightgbm", "blend"]


@pytest.fixture
def con(scored_day_file, tmp_path):
    with writable_copy(scored_day_file, tmp_path) as con:
        yield con


def _pool_matrix(con, features):
    con.execute("create or replace temp table req as select customer_id, offer_id, day from candidate_pool "
                "where day = ? order by customer_id, offer_id limit 3000", [DAY])
    frame = stored_matrix(con, "req", DAY).sort("customer_id", "offer_id")
    return as_matrix(frame, features)


@pytest.mark.parametrize("kind, explain", [("logistic_regression", models.explain_logistic_regression),
                                           ("lightgbm", models.explain_lightgbm),
                                           ("lightgbm", models.explain_lightgbm_shap),
                                           ("blend", models.explain_blend)])
def test_contributions_plus_bias_reproduce_the_raw_score(con, kind, explain):
    _, stored = selected_model(con, DAY, kind=kind)
    loaded = models.load(stored)
    X = _pool_matrix(con, stored.features)
    assert np.isnan(X).any(), "the rows should include missing values (the LR's missing flags count too)"
    assert models.EXPLAINERS[kind] in (models.explain_logistic_regression, models.explain_lightgbm,
                                      models.explain_blend)
    explained = explain(loaded, X)
    assert explained.features == stored.features and explained.values.shape == X.shape
    raw = models.raw_score(loaded, X)
    assert np.abs(explained.values.sum(axis=1) + explained.bias - raw).max() < 1e-6
    # the raw score is the log-odds of what serves: the sampling correction sits in the bias
    served = loaded.predict(X)
    assert np.abs(1 / (1 + np.exp(-raw)) - served).max() < 1e-9
    # and the contributions move with the rows: not a constant split of the score
    assert np.std(explained.values, axis=0).max() > 0.01
    assert explain(loaded, X[:7]).values.tolist() == explained.values[:7].tolist()  # a row's own, not its batch's


def test_lightgbm_path_contributions_credit_the_features_treeshap_credits(con):
    loaded = models.load(selected_model(con, DAY, kind="lightgbm")[1])
    X = _pool_matrix(con, loaded.stored.features)[:1000]
    path, shap = models.explain_lightgbm(loaded, X).values, models.explain_lightgbm_shap(loaded, X).values
    # the same features matter overall, and per row the strongest features mostly agree
    assert np.corrcoef(np.abs(path).mean(axis=0), np.abs(shap).mean(axis=0))[0, 1] > 0.9
    top3 = [len(set(np.argsort(-a)[:3]) & set(np.argsort(-b)[:3])) / 3 for a, b in zip(path, shap)]
    assert np.mean(top3) > 0.5


def _top(con, kind):
    version, stored = selected_model(con, DAY, kind=kind)
    scored = score_pool(con, DAY, stored)
    return stored, top_k(scored, 10, 3, items=offer_items(con))


@pytest.mark.parametrize("kind", KINDS)
def test_every_served_row_gets_one_to_three_reasons_deterministically(con, kind):
    stored, top = _top(con, kind)
    reasons = reasons_for(con, DAY, stored, top)
    assert reasons.len() == top.height > 100
    lengths = reasons.list.len()
    assert lengths.min() >= 1 and lengths.max() <= MAX_REASONS
    phrases = reasons.explode()
    assert phrases.null_count() == 0 and (phrases.str.len_chars() > 3).all()
    assert lengths.mean() > 1.5, "most rows should be explained by the model, not the strategy fallback"
    # the same rows in another order get the same reasons, row for row
    shuffled = top.sample(fraction=1.0, shuffle=True, seed=3)
    again = shuffled.with_columns(reasons=reasons_for(con, DAY, stored, shuffled))
    original = top.with_columns(reasons=reasons)
    joined = original.join(again, on=["customer_id", "offer_id"], suffix="_again")
    assert joined.height == top.height and (joined["reasons"] == joined["reasons_again"]).all()


def test_reasons_name_the_rows_own_catalogue_values(con):
    stored, top = _top(con, "logistic_regression")
    top = top.with_columns(reasons=reasons_for(con, DAY, stored, top))
    names = con.sql("select o.offer_id, p.category, p.name, o.discount_type, o.discount_value from offers o "
                    "join products p using (product_id)").pl().unique("offer_id")
    rows = top.join(names, on="offer_id").explode("reasons")
    percent = rows.filter(pl.col("reasons").str.ends_with("% off"))
    assert percent.height, "some served offer should be explained by its discount"
    assert (percent["discount_type"] == "percentage").all()
    assert (percent["reasons"] == percent["discount_value"].round(0).cast(pl.Int64).cast(pl.Utf8) + "% off").all()
    about_product = pl.col("reasons").str.contains(pl.col("name"), literal=True)
    category = rows.filter(pl.col("reasons").str.starts_with("you buy ") | pl.col("reasons").str.starts_with(
        "you last bought ") | pl.col("reasons").str.starts_with("you usually buy ")).filter(~about_product)
    assert category.height
    named = pl.col("reasons").str.contains(pl.col("category").str.replace_all("_", " "), literal=True)
    assert category.select(named).to_series().all()


def test_a_kind_without_an_explainer_falls_back_to_the_strategy(con, monkeypatch):
    stored, top = _top(con, "lightgbm")
    monkeypatch.delitem(models.EXPLAINERS, "lightgbm")
    reasons = reasons_for(con, DAY, stored, top)
    assert (reasons.list.len() == 1).all()
    fallbacks = pl.DataFrame({"strategy": top["strategy"], "reason": reasons.list.first()})
    affinity = fallbacks.filter(pl.col("strategy") == "category_affinity")
    assert affinity.height and affinity["reason"].str.ends_with(", one of the categories you buy most").all()
    assert fallbacks["reason"].n_unique() > 5  # each names its own category or product


def test_a_kind_plugs_in_its_own_explainer_and_unknown_names_are_skipped(con, monkeypatch):
    stored, top = _top(con, "lightgbm")

    def crossed(model, X):  # e.g. a wide part: a crossed feature the template table has no phrase for
        values = np.tile([5.0, 0.5], (len(X), 1))
        return models.Contributions(["category_x_segment", "discount_depth"], values, np.zeros(len(X)))

    monkeypatch.setitem(models.EXPLAINERS, "lightgbm", crossed)
    got = reasons_from(pl.DataFrame({"discount_type": ["bogo"], "discount_value": [1.0], "strategy": ["x"]}),
                       crossed(None, np.zeros((1, 2))))
    assert got["reasons"].to_list() == [["buy one, get one free"]]
    reasons = reasons_for(con, DAY, stored, top)
    assert (reasons.list.len() == 1).all()


# One row per template: values that make it (and no earlier template of its group) true.
CASES = {
    "category_most_trips": {"category": "Dairy", "category_affinity_score": 0.6},
    "category_often": {"category": "Dairy", "category_affinity_score": 0.1, "category_line_share": 0.2},
    "category_before": {"category": "Dairy", "category_affinity_score": 0.05,
                        "days_since_last_purchase_in_category": 40},
    "cycle_due": {"category": "Dairy", "category_affinity_score": 0.5, "frequency": 12,
                  "days_since_regular_purchase_in_category": 20},
    "cycle_last": {"category": "Dairy", "category_affinity_score": 0.5, "frequency": 12,
                   "days_since_last_purchase_in_category": 1},
    "product_due": {"product_name": "Milk 1L", "bought_product_before": 1, "product_purchase_days": 4,
                    "days_since_product_purchase": 9, "product_due_ratio": 1.125},
    "product_again": {"product_name": "Milk 1L", "bought_product_before": 1},
    "product_new": {"bought_product_before": 0},
    "popular_choice": {"category": "Dairy", "product_share_in_category": 0.05},
    "brand_usual": {"brand": "Alpina", "brand_line_share": 0.7},
    "brand_often": {"brand": "Alpina", "brand_affinity": 0.3},
    "discount_percent": {"discount_type": "percentage", "discount_value": 30.0},
    "discount_amount": {"discount_type": "fixed_amount", "discount_value": 1.5},
    "discount_bogo": {"discount_type": "bogo", "discount_value": 2.0},
    "discount_depth": {"discount_depth": 0.25},
    "deeper_than_usual": {"discount_depth_vs_usual": 0.1},
    "deal_for_you": {"promo_affinity_all": 0.4, "discount_depth": 0.3},
    "promo_often": {"promo_affinity": 0.5},
    "offers_used": {"redemption_rate": 0.2},
    "shopper_weekly": {"frequency": 14},
    "shopper_recent": {"frequency": 3, "recency_days": 2},
    "segment": {"segment": "horeca"},
    "offer_popular": {"historical_redemption_rate": 0.2},
    "offer_ending": {"days_until_expiry": 1},
    "strategy_category": {"strategy": "category_affinity", "category": "Dairy"},
    "strategy_repeat": {"strategy": "repeat_purchase", "product_name": "Milk 1L"},
    "strategy_segment": {"strategy": "segment_default", "segment": "family"},
    "strategy_store": {"strategy": "store_popularity"},
    "strategy_essentials": {"strategy": "essentials"},
    "strategy_any": {"strategy": "high_margin"},
}
EXPECTED = {
    "category_most_trips": "you buy Dairy on most shopping trips",
    "cycle_due": "you usually buy Dairy every 2 weeks; last time 20 days ago",
    "cycle_last": "you last bought Dairy yesterday",
    "product_due": "you buy Milk 1L every 8 days; last time 9 days ago",
    "popular_choice": "a popular choice in Dairy",
    "discount_percent": "30% off",
    "discount_amount": "1.50 off the price",
    "discount_bogo": "buy one, get 2 free",
    "discount_depth": "25% off the shelf price",
    "segment": "picked for hotel and restaurant shoppers like you",
    "strategy_segment": "popular with family shoppers",
}


def test_every_template_is_reachable_and_fills_in_the_rows_values():
    names = [t.name for t in TEMPLATES + FALLBACKS]
    assert sorted(CASES) == sorted(names) and len(set(names)) == len(names)
    facts = pl.DataFrame([{"strategy": "high_margin", **values} for values in CASES.values()])
    features = [f for group in GROUPS.values() for f in group]
    values = np.zeros((facts.height, len(features)))
    template_group = {t.name: t.group for t in TEMPLATES}
    for i, name in enumerate(CASES):  # the case's group is the row's one positive contribution
        if name in template_group:
            values[i, features.index(GROUPS[template_group[name]][0])] = 1.0
    got = reasons_from(facts, models.Contributions(features, values, np.zeros(facts.height)))
    assert got["templates"].to_list() == [[name] for name in CASES]
    for name, phrase in EXPECTED.items():
        assert got["reasons"][list(CASES).index(name)].to_list() == [phrase]


def test_only_the_strongest_positive_groups_become_reasons_strongest_first():
    facts = pl.DataFrame({"strategy": ["x", "x"], "category": ["Dairy", "Dairy"], "category_affinity_score": [0.6, 0.6],
                          "discount_type": ["percentage"] * 2, "discount_value": [20.0] * 2,
                          "bought_product_before": [1, 1], "product_name": ["Milk"] * 2, "brand": ["A", "A"],
                          "brand_line_share": [0.9, 0.9], "redemption_rate": [0.3, 0.3]})
    features = ["category_affinity_score", "discount_depth", "bought_product_before", "brand_line_share",
                "redemption_rate"]
    values = np.array([[0.2, 0.9, 0.5, 0.3, -2.0],       # four positive: the best three, strongest first
                       [0.04, -0.3, 0.06, 0.0, 0.0]])    # below MIN_LOG_ODDS (0.05) does not count
    got = reasons_from(facts, models.Contributions(features, values, np.zeros(2)))["reasons"].to_list()
    assert got == [["20% off", "you have bought Milk before", "you usually choose A"],
                   ["you have bought Milk before"]]


@pytest.mark.parametrize("broken, fails", [(None, False), ([], True), (["30% off", ""], True),
                                           (["a", "b", "c", "d"], True), ("null", True)])
def test_the_reasons_check_catches_a_row_without_proper_reasons(con, broken, fails):
    ensure_schema(con)
    stored, top = _top(con, "logistic_regression")
    top = top.with_columns(reasons=reasons_for(con, DAY, stored, top), run_date=pl.lit(DAY), model_version=pl.lit("m"))
    if broken is not None:  # the first row's reasons replaced
        value = pl.lit(None, dtype=pl.List(pl.Utf8)) if broken == "null" else pl.lit(broken, dtype=pl.List(pl.Utf8))
        top = top.with_columns(reasons=pl.when(pl.int_range(pl.len()) == 0).then(value).otherwise("reasons"))
    replace_partitions(con, {"recommendations": top}, DAY, DAY + timedelta(days=1), column="run_date")
    (check,) = [c for c in RECOMMENDATION_CHECKS if c.name == "recommendations_have_reasons"]
    (outcome,) = evaluate_checks(con, [check], DAY, DAY + timedelta(days=1))
    assert outcome.passed is not fails
