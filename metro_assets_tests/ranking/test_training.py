"""Training the ranker on tiny data: windows, leakage, bad input, model storage."""

from datetime import timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from metro_assets.errors import DataError
from metro_assets.ranking import models
from metro_assets.ranking.scoring import selected_model, top_k
from metro_assets.ranking.training import as_matrix, model_rows, train_rankers, training_set
from metro_assets.settings import DeepSettings
from metro_assets.warehouse import replace_partitions
from metro_assets_tests.conftest import HISTORY_END

DAY = HISTORY_END  # 2025-09-26, the tiny run date


@pytest.fixture
def con(tiny_warehouse):
    con = duckdb.connect(str(tiny_warehouse))
    yield con
    con.close()


def test_training_set_uses_only_closed_labels_and_a_temporal_split(con):
    ts = training_set(con, DAY, weeks=8)
    assert ts.train.height > 0 and ts.train["label"].sum() > 0
    assert ts.train["day"].max() < ts.window.validation_start <= ts.validation["day"].min()
    assert ts.validation["day"].max() < DAY - timedelta(days=7)
    # negatives were sampled about 1:4, positives all kept
    ratio = (ts.train.height - ts.train["label"].sum()) / ts.train["label"].sum()
    assert 2.5 < ratio < 6 and 0 < ts.sampling_rate <= 1


def _store(con, ts, trained, reason):
    replace_partitions(con, {"model_versions": model_rows(DAY, ts, trained, reason)}, DAY, DAY + timedelta(days=1))


def test_both_models_train_and_the_better_one_serves_from_the_warehouse(con):
    ts = training_set(con, DAY)
    trained, reason = train_rankers(ts)
    assert [m.stored.kind for m in trained] == ["lightgbm", "logistic_regression", "blend"]
    assert sum(m.selected for m in trained) == 1 and reason
    _store(con, ts, trained, reason)
    version, stored = selected_model(con, DAY + timedelta(days=3))
    assert version.startswith(str(DAY))
    p = models.load(stored).predict(as_matrix(ts.validation, stored.features))
    assert ((p >= 0) & (p <= 1)).all()
    # scores stay probabilities: the mean prediction is near the observed rate
    assert abs(p.mean() - ts.validation["label"].mean()) < 0.05


def test_a_model_for_a_day_ignores_events_on_and_after_it(con):
    before = train_rankers(training_set(con, DAY), DeepSettings())[0]  # every kind, Wide & Deep too
    later = [(DAY + timedelta(days=d)) for d in (0, 3)]
    for day in later:  # copy a day of events to D and D+3, with new ids
        con.execute("insert into impressions by name select impression_id + 10000000 as impression_id, customer_id, "
                    "offer_id, "
                    "shown_timestamp + to_days((?::date - day)::int) as shown_timestamp, channel, ? as day "
                    "from impressions where day = ?",
                    [day, day, DAY - timedelta(days=10)])
        con.execute("insert into redemptions select redemption_id + 10000000, customer_id, offer_id, order_id, "
                    "redeemed_timestamp + to_days((?::date - day)::int), ? from redemptions where day >= ?",
                    [day, day, DAY - timedelta(days=10)])
        con.execute("insert into orders select order_id + 10000000, customer_id, store_id, "
                    "order_timestamp + to_days((?::date - day)::int), total_amount * 3, num_items, ? from orders where day = ?",
                    [day, day, DAY - timedelta(days=2)])
        # products created on D or later: not in the catalogue Wide & Deep embeds
        con.execute("insert into products by name select product_id + 10000000 as product_id, name, category, "
                    "subcategory, brand, base_price, margin, shelf_life_days, ? as day from products", [day])
    after = train_rankers(training_set(con, DAY), DeepSettings())[0]
    assert len(after) == len(before) >= 2
    for a, b in zip(before, after):
        assert a.stored.blob == b.stored.blob
        assert a.metrics == b.metrics


def test_no_impressions_in_the_window_is_a_clear_error(con):
    with pytest.raises(DataError, match="no impressions shown between"):
        training_set(con, DAY - timedelta(days=60))


def test_a_window_without_redemptions_is_a_clear_error(con):
    con.execute("delete from redemptions")
    with pytest.raises(DataError, match="no positive example"):
        training_set(con, DAY)


def test_a_single_class_validation_week_falls_back_to_logistic_regression(con):
    ts = training_set(con, DAY)
    ts.validation = ts.validation.with_columns(label=pl.lit(False))
    trained, reason = train_rankers(ts)
    assert [m.selected for m in trained] == [False, True, False]
    assert "single class" in reason
    assert trained[0].metrics["auc"] is None


def test_no_model_before_the_day_is_a_clear_error(con):
    with pytest.raises(DataError, match="run the retrain job"):
        selected_model(con, DAY)


def test_top_k_breaks_ties_by_offer_id_and_ranks_without_gaps():
    scored = pl.DataFrame({"customer_id": [1] * 12 + [2], "offer_id": list(range(12, 0, -1)) + [5],
                           "score": [0.5] * 12 + [0.1], "strategy": ["x"] * 13,
                           "product_id": list(range(12, 0, -1)) + [5], "category": list("abcdefghijkl") + ["a"]})
    top = top_k(scored, 10)
    first = top.filter(pl.col("customer_id") == 1)
    assert first["offer_id"].to_list() == list(range(1, 11))
    assert first["rank"].to_list() == list(range(1, 11))
    assert top.filter(pl.col("customer_id") == 2)["rank"].to_list() == [1]


def test_stored_models_predict_the_same_after_a_round_trip():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 3))
    X[rng.random((600, 3)) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=600) > 1).astype(int)
    parts = [train(X, y, ["a", "b", "c"], sampling_rate=0.5)
             for train in (models.train_lightgbm, models.train_logistic_regression)]
    for stored in [*parts, models.blend(parts)]:
        again = models.StoredModel(stored.kind, stored.blob, stored.features, stored.sampling_rate, {})
        assert np.allclose(models.load(stored).predict(X), models.load(again).predict(X))


def test_the_blend_averages_its_parts_log_odds_and_refuses_parts_it_cannot_average():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 3))
    X[rng.random((2000, 3)) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) ** 2 + rng.normal(size=2000) > 1.5).astype(int)
    parts = [train(X, y, ["a", "b", "c"], sampling_rate=0.25)
             for train in (models.train_lightgbm, models.train_logistic_regression)]
    both = models.blend(parts)
    assert both.kind == "blend" and both.features == ["a", "b", "c"] and both.sampling_rate == 0.25
    assert abs(sum(both.importances.values()) - 1) < 1e-9 and both.importances["a"] > both.importances["c"]
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    mean = np.mean([logit(models.load(m).predict(X)) for m in parts], axis=0)
    assert np.abs(logit(models.load(both).predict(X)) - mean).max() < 1e-9
    with pytest.raises(ValueError, match="share their features"):
        models.blend([parts[0], models.StoredModel("logistic_regression", parts[1].blob, ["a", "b", "x"], 0.25, {})])
    with pytest.raises(ValueError, match="two or more parts"):
        models.blend(parts[:1])
    with pytest.raises(ValueError, match="two or more parts"):
        models.blend([*parts, models.StoredModel("wide_deep", "", ["a", "b", "c"], 0.25, {})])
    # the logistic regression's missing flags count toward their feature's importance
    lr = models.StoredModel("logistic_regression", "", ["a", "b"], 1.0, {"a": 1.0, "b": 0.5, "b_missing": -1.5})
    gbm = models.StoredModel("lightgbm", "", ["a", "b"], 1.0, {"a": 0.5, "b": 0.5})
    assert models.blend([gbm, lr]).importances == pytest.approx({"a": (1 / 3 + 1 / 2) / 2, "b": (2 / 3 + 1 / 2) / 2})


def test_the_window_rule_reads_its_settings(monkeypatch):
    from metro_assets.errors import SettingError
    from metro_assets.ranking.training import window_rule
    from metro_assets.settings import load_ranker_settings

    monkeypatch.setenv("METRO_TARGET_TRAIN_POSITIVES", "1500")
    monkeypatch.setenv("METRO_MIN_TRAIN_POSITIVES", "200")
    rule = window_rule(load_ranker_settings())
    assert (rule.target_train_positives, rule.min_train_positives, rule.weeks) == (1500, 200, 8)
    monkeypatch.setenv("METRO_TARGET_TRAIN_POSITIVES", "many")
    with pytest.raises(SettingError, match="METRO_TARGET_TRAIN_POSITIVES='many' is not a whole number"):
        load_ranker_settings()


def test_validation_takes_the_weeks_it_needs_but_leaves_training_the_most():
    from datetime import date

    from metro_assets.ranking.training import TrainingWindow, WindowRule, choose_window

    train_day = date(2026, 3, 2)
    end = train_day - timedelta(days=7)
    # positives per week, newest first: 10, 10, then 20 a week for ten more weeks (one impression each)
    per_week = [10, 10] + [20] * 10
    days = [end - timedelta(days=7 * w + 1) for w, n in enumerate(per_week) for _ in range(n)]
    shown = pl.DataFrame({"day": days, "label": [True] * len(days)})
    rule = WindowRule(weeks=4, max_weeks=12, min_train_positives=60, min_validation_positives=15,
                      target_train_positives=60)
    window, notes = choose_window(shown, train_day, rule)
    assert window.validation_start == end - timedelta(weeks=2) and not notes  # 20 positives in 2 weeks
    # training needs 60 positives after those 2 weeks: 3 weeks of 20, so the window spans 2 + 3 (+1) weeks
    assert window == TrainingWindow.ending(train_day, 6, validation_weeks=2)
    # never more than a third of all positives for validation, whatever it asks for
    greedy, notes = choose_window(shown, train_day, WindowRule(weeks=4, max_weeks=12, min_train_positives=0,
                                                               min_validation_positives=1_000))
    assert greedy.validation_start >= end - timedelta(weeks=5)  # 10+10+20+20 = 60 <= 220 / 3
    assert any("METRO_MIN_VALIDATION_POSITIVES=1000" in n for n in notes)


def test_the_window_grows_toward_the_target_and_warns_only_below_the_minimum():
    from datetime import date

    from metro_assets.ranking.training import TrainingWindow, WindowRule, choose_window

    train_day = date(2026, 3, 2)
    end = train_day - timedelta(days=7)
    per_week = [20] * 12  # 20 positives a week for 12 weeks, newest first
    days = [end - timedelta(days=7 * w + 1) for w, n in enumerate(per_week) for _ in range(n)]
    shown = pl.DataFrame({"day": days, "label": [True] * len(days)})
    # 60 positives would do (3 training weeks) but 100 are wanted: 5 training weeks, no warning
    rule = WindowRule(weeks=4, max_weeks=20, min_train_positives=60, min_validation_positives=20,
                      target_train_positives=100)
    window, notes = choose_window(shown, train_day, rule)
    assert window == TrainingWindow.ending(train_day, 7, validation_weeks=1) and not notes
    # a target beyond all the history: the widest window, still no warning while the minimum is met
    wide, notes = choose_window(shown, train_day, WindowRule(weeks=4, max_weeks=20, min_train_positives=60,
                                                             min_validation_positives=20,
                                                             target_train_positives=10_000))
    assert wide.start <= min(days) and not notes
    # below the minimum at the widest window: the warning names the minimum, not the target
    short, notes = choose_window(shown, train_day, WindowRule(weeks=4, max_weeks=20, min_train_positives=1_000,
                                                              min_validation_positives=20,
                                                              target_train_positives=100))
    assert short == wide and any("METRO_MIN_TRAIN_POSITIVES=1000" in n for n in notes)


def test_a_sparse_log_grows_the_window_and_says_what_it_could_not_reach(con):
    from metro_assets.ranking.training import WindowRule

    # keep about one redemption in 8: a sparser log, as a real retailer's looks next to the simulation
    con.execute("delete from redemptions where hash(redemption_id) % 8 <> 0")
    usual = training_set(con, DAY, weeks=4)
    rule = WindowRule(weeks=4, max_weeks=6, min_train_positives=10_000, min_validation_positives=10_000)
    grown = training_set(con, DAY, rule)
    assert grown.window.start < usual.window.start  # it reached back as far as it was allowed
    assert grown.window.start == DAY - timedelta(weeks=6)
    assert any("METRO_MIN_TRAIN_POSITIVES" in n for n in grown.notes)
    trained, reason = train_rankers(grown)
    assert "WARNING" in reason and "METRO_MIN_TRAIN_POSITIVES=10000" in reason
    # plentiful data keeps the usual window exactly
    plenty = WindowRule(weeks=4, max_weeks=6, min_train_positives=1, min_validation_positives=1,
                        target_train_positives=1)
    assert training_set(con, DAY, plenty).window == usual.window


def test_the_purchase_label_is_denser_than_redemptions(con):
    from metro_assets.ranking.training import WindowRule

    redeemed = training_set(con, DAY, WindowRule(weeks=4, max_weeks=4, min_train_positives=0,
                                                 min_validation_positives=0))
    bought = training_set(con, DAY, WindowRule(weeks=4, max_weeks=4, min_train_positives=0,
                                               min_validation_positives=0, label="product_purchase"))
    assert bought.validation["label"].sum() > redeemed.validation["label"].sum()
    trained, reason = train_rankers(bought)
    assert "trained on label product_purchase" in reason


def test_the_window_stops_growing_at_the_oldest_impression():
    from datetime import date

    from metro_assets.ranking.training import TrainingWindow, WindowRule, choose_window

    train_day = date(2026, 3, 2)
    end = train_day - timedelta(days=7)
    # five weeks of history, two positives a week: far fewer than the rule asks for
    days = [end - timedelta(days=7 * w + 1) for w in range(5) for _ in range(2)]
    shown = pl.DataFrame({"day": days, "label": [True] * len(days)})
    window, notes = choose_window(shown, train_day, WindowRule(weeks=4, max_weeks=52, min_train_positives=500,
                                                               min_validation_positives=1))
    assert window == TrainingWindow.ending(train_day, 6)  # 5 weeks of impressions + the label week, not 52
    assert window.start <= min(days)
    assert any("over 6 weeks (all the history there is)" in n for n in notes)
