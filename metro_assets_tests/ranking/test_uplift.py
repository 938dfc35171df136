"""Uplift learners: they recover a known effect, travel as text, and learn from randomised exposure only,
point in time."""

from datetime import timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from metro_assets.monitoring.qini import qini_true
from metro_assets.ranking import uplift
from metro_assets.ranking.allocation import allocate_pairs
from metro_assets.ranking.models import StoredModel
from metro_assets_tests.conftest import HISTORY_END


def _synthetic(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = rng.random(n) < 0.3
    base = 0.05 + 0.03 * (X[:, 1] > 0)                       # would buy anyway: not the effect
    tau = np.where(X[:, 0] > 0.5, 0.12, np.where(X[:, 0] < -1, -0.03, 0.01))  # persuadables, sleeping dogs
    y = (rng.random(n) < np.clip(base + t * tau, 0, 1)).astype(int)
    return X, t, y, tau


@pytest.mark.parametrize("kind", uplift.UPLIFT_KINDS)
def test_each_learner_ranks_by_the_true_effect_and_round_trips_as_text(kind):
    X, t, y, tau = _synthetic()
    model = uplift.train_learner(kind, X, t, y, ["a", "b", "c"], attention=0.5)
    Xt, _, _, tau_t = _synthetic(10_000, seed=1)
    pred = model.predict(Xt)
    # better than the outcome's own best predictor (who buys anyway) and close to the best possible order
    assert qini_true(pred, tau_t) > 0.6 * qini_true(tau_t, tau_t)
    assert np.corrcoef(pred, tau_t)[0, 1] > 0.5
    # predictions are for position 1: the learned slot effect divided by the slots' mean attention
    assert np.isclose(model.predict(Xt[:5]), model.effect(Xt[:5]) / 0.5).all()
    stored = model.stored()
    assert stored.kind == kind and isinstance(stored.blob, str) and "boosters" in stored.blob
    again = uplift.load(StoredModel(kind, stored.blob, stored.features, 1.0, {}))
    np.testing.assert_allclose(again.predict(Xt[:100]), pred[:100])
    with pytest.raises(ValueError, match="not an uplift learner"):
        uplift.load(StoredModel("lightgbm", stored.blob, stored.features, 1.0, {}))


def test_training_units_are_randomised_and_point_in_time(tiny_world_file):
    day = HISTORY_END - timedelta(days=5)
    con = duckdb.connect(str(tiny_world_file), read_only=True)
    us = uplift.uplift_training_set(con, day, weeks=6, validation_weeks=1)
    units = us.units
    assert units["day"].max() < day - timedelta(days=7)    # every outcome week closed before the day
    treated, control = units.filter(pl.col("treated")), units.filter(~pl.col("treated"))
    assert treated.height > 100 and control.height > treated.height  # ~2 controls per treated unit
    # treated units are exploration slots; control units belong to holdout customers on their day
    con.register("t_units", treated.select("customer_id", "offer_id", "day").to_arrow())
    con.register("c_units", control.select("customer_id", "day").to_arrow())
    not_explored = con.sql("""select count(*) from t_units u anti join impressions i on i.customer_id = u.customer_id
                              and i.offer_id = u.offer_id and i.day = u.day and i.is_exploration""").fetchall()[0][0]
    not_holdout = con.sql("""select count(*) from c_units u anti join experiment_assignments a
                             on a.customer_id = u.customer_id and a.arm = 'holdout'
                             and u.day between a.from_date and a.to_date""").fetchall()[0][0]
    assert not_explored == 0 and not_holdout == 0
    # no control unit was shown anything that day
    shown = con.sql("""select count(*) from c_units u semi join impressions i on i.customer_id = u.customer_id
                       and i.day = u.day""").fetchall()[0][0]
    assert shown == 0
    assert 0.3 < us.attention <= 1.0
    con.close()


def test_the_margin_objective_never_shows_a_negative_predicted_uplift():
    pairs = pl.DataFrame({
        "customer_id": [1, 1, 1, 2], "offer_id": [1, 2, 3, 1], "product_id": [10, 20, 30, 10],
        "category": ["a", "b", "c", "a"], "p_redeem": [0.3, 0.1, 0.1, 0.3], "uplift": [-0.01, 0.05, 0.0001, 0.2],
        "gross": [5.0, 5.0, 5.0, 5.0], "margin": [0.3] * 4, "discount": [0.5] * 4})
    out = allocate_pairs(pairs, "incremental_margin", None, 10, 3)
    # offer 1 for customer 1: negative uplift; offer 3: positive uplift but a value below 0 (discount > margin)
    assert sorted(zip(out.chosen["customer_id"], out.chosen["offer_id"])) == [(1, 2), (2, 1)]
    assert out.dropped_negative == 2
    plain = allocate_pairs(pairs, "redemptions", None, 10, 3)
    assert plain.chosen.height == 4 and (plain.chosen["value"] == plain.chosen["p_redeem"]).all()


@pytest.mark.parametrize("treated", [True, False])
def test_a_log_with_one_arm_only_is_a_data_error_not_a_lightgbm_crash(treated):
    from datetime import date

    from metro_assets.errors import DataError
    from metro_assets.ranking.training import RANKER_FEATURES, TrainingWindow

    days = [date(2025, 9, 1) + timedelta(days=i) for i in range(14)]
    units = pl.DataFrame({"customer_id": list(range(14)), "offer_id": [1] * 14, "day": days,
                          "treated": [treated] * 14, "position": [1] * 14, "purchased": [0, 1] * 7,
                          **{name: [0.5] * 14 for name in RANKER_FEATURES}})
    us = uplift.UpliftSet(units, TrainingWindow.ending(date(2025, 9, 15), weeks=1), attention=0.5)
    with pytest.raises(DataError, match="treated and control"):
        uplift.train_uplift_learners(us)
