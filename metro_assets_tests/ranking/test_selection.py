"""Which kind serves: the ranking-aware selection rule (issue 14), on synthetic validation weeks and tiny data."""

from datetime import timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from metro_assets.ranking import models, selection
from metro_assets.ranking.training import (TrainedModel, best_model, model_rows, selection_reason, train_rankers,
                                           training_set, validation_figures)
from metro_assets.warehouse import replace_partitions
from metro_assets_tests.conftest import HISTORY_END


def _week(customers: int = 300, offers: int = 8, seed: int = 0):
    """A validation week where who redeems at all (``activity``) and what each customer prefers (``taste``)
    both matter: one score knows only the first, the other only the second."""
    rng = np.random.default_rng(seed)
    activity = np.repeat(rng.normal(0, 1.5, customers), offers)
    taste = rng.normal(0, 1, customers * offers)
    p = 1 / (1 + np.exp(-(-3.0 + 1.5 * activity + 1.0 * taste)))
    week = pl.DataFrame({"customer_id": np.repeat(np.arange(customers), offers),
                         "offer_id": np.tile(np.arange(offers), customers),
                         "label": (rng.random(customers * offers) < p).astype(int)})
    return week, activity + rng.normal(0, 0.05, activity.size), taste


def _kind(kind: str, week: pl.DataFrame, scores: np.ndarray) -> TrainedModel:
    return TrainedModel(models.StoredModel(kind, "", [], 1.0, {}), validation_figures(week, scores))


def test_grouped_auc_and_ndcg_by_hand():
    week = pl.DataFrame({"customer_id": [1, 1, 1, 2, 2, 2, 3, 4, 4],
                         "offer_id": [1, 2, 3, 1, 2, 3, 1, 1, 2],
                         "label": [1, 0, 0, 0, 1, 0, 1, 0, 0]})
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.5, 0.5, 0.3, 0.2])
    per = selection.per_customer(week, scores)
    # customer 1: the redeemed offer on top; customer 2: above one, tied with one (half), below one
    assert per["customer_id"].to_list() == [1, 2]  # 3 has no negative, 4 no positive: not counted
    assert per["auc"].to_list() == pytest.approx([1.0, 0.25])
    # customer 2's redeemed offer ranks 2nd (the tie goes to the lower offer_id): 1 / log2(3)
    assert per["ndcg"].to_list() == pytest.approx([1.0, 1 / np.log2(3)])
    m = selection.ranking_metrics(week, scores)
    assert m["grouped_auc"] == pytest.approx(0.625) and m["ranking_customers"] == 2
    assert selection.ranking_metrics(week.head(1), scores[:1])["grouped_auc"] is None


def test_the_kind_that_ranks_within_customers_serves_although_its_global_auc_is_lower():
    week, knows_who, knows_what = _week()
    who = _kind("logistic_regression", week, knows_who)  # the preferred kind: it must be beaten
    what = _kind("wide_deep", week, knows_what)
    assert who.metrics["auc"] > what.metrics["auc"] + 0.05            # the old rule would keep `who`
    assert what.metrics["grouped_auc"] > who.metrics["grouped_auc"] + 0.1
    assert models._global_better(who.metrics, what.metrics)
    assert best_model([who, what]) is what and best_model([what, who]) is what  # list order does not matter
    reason = selection_reason(what, [who, what])
    assert reason.startswith("wide_deep: ranks the validation week's customers best")
    assert f"wide_deep {what.metrics['grouped_auc']:.4f}" in reason


def test_within_the_tie_the_simpler_kind_keeps_serving(monkeypatch):
    week, _, taste = _week(seed=1)
    rng = np.random.default_rng(2)
    lr = _kind("logistic_regression", week, taste + rng.normal(0, 0.5, taste.size))
    wd = _kind("wide_deep", week, taste + rng.normal(0, 0.3, taste.size))  # a little better within customers
    z = selection.paired_z(np.array(wd.metrics["customer_auc"]), np.array(lr.metrics["customer_auc"]))
    assert z > 0 and wd.metrics["grouped_auc"] > lr.metrics["grouped_auc"]
    monkeypatch.setattr(selection, "TIE_Z", z + 0.5)   # ahead, but by less than the tie
    assert best_model([wd, lr]) is lr
    assert "not separated from wide_deep" in selection_reason(lr, [wd, lr])
    monkeypatch.setattr(selection, "TIE_Z", z - 0.01)  # ahead by more than the tie: the later kind serves
    assert best_model([wd, lr]) is wd and best_model([lr, wd]) is wd


def test_the_blend_serves_when_no_other_kind_is_separated_from_it():
    week, _, taste = _week(seed=3)
    rng = np.random.default_rng(4)
    scores = taste + rng.normal(0, 0.5, taste.size)
    kinds = [_kind(k, week, scores) for k in ("lightgbm", "logistic_regression", "wide_deep", "blend")]
    assert best_model(kinds) is kinds[-1] and best_model(kinds[::-1]) is kinds[-1]  # tied: the first in order
    assert selection_reason(kinds[-1], kinds).startswith("blend: serves by the champion rule (the blend first")
    few = _week(customers=20)[0]  # the global fallback keeps the order too
    tied = [_kind(k, few, np.arange(few.height, dtype=float)) for k in ("logistic_regression", "blend")]
    assert best_model(tied) is tied[1]


def test_too_few_customers_to_compare_falls_back_to_the_global_auc():
    week, who, what = _week(customers=20)  # fewer than MIN_RANKING_CUSTOMERS can have both labels
    a, b = _kind("logistic_regression", week, who), _kind("wide_deep", week, what)
    assert a.metrics["ranking_customers"] < selection.MIN_RANKING_CUSTOMERS
    assert not models.ranks_within_customers(a.metrics, b.metrics)
    assert best_model([a, b]) is (b if models._global_better(b.metrics, a.metrics) else a)
    assert "fallback" in selection_reason(best_model([a, b]), [a, b])
    # metrics without the grouped figures (a kind validated the old way) take the global rule too
    old = TrainedModel(models.StoredModel("lightgbm", "", [], 1.0, {}), {"auc": 0.99, "log_loss": 0.1})
    assert best_model([a, old]) is old


def test_the_rule_and_its_figures_are_recorded(tiny_warehouse):
    con = duckdb.connect(str(tiny_warehouse))
    try:
        ts = training_set(con, HISTORY_END)
        trained, reason = train_rankers(ts)
        rows = model_rows(HISTORY_END, ts, trained, reason)
        replace_partitions(con, {"model_versions": rows}, HISTORY_END, HISTORY_END + timedelta(days=1))
        stored = con.execute("select kind, selected, validation_grouped_auc, validation_ndcg_at_10, "
                             "validation_ranking_customers, selection_reason from model_versions "
                             "where day = ? and kind in ('lightgbm', 'logistic_regression', 'blend') order by kind",
                             [HISTORY_END]).fetchall()
    finally:
        con.close()
    counted = ts.validation.group_by("customer_id").agg(pl.col("label").sum(), n=pl.len()).filter(
        (pl.col("label") > 0) & (pl.col("label") < pl.col("n"))).height
    for kind, selected, grouped, ndcg, customers, text in stored:
        assert customers == counted > 0
        assert 0 <= grouped <= 1 and 0 <= ndcg <= 1
        assert text == reason
    chosen = next(m for m in trained if m.selected)
    assert [r[0] for r in stored if r[1]] == [chosen.stored.kind] and chosen is best_model(trained)
    assert ("grouped AUC" in reason) == (counted >= selection.MIN_RANKING_CUSTOMERS)
