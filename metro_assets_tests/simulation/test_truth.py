"""The oracle over the warehouse reproduces the simulator's own figures, and they mean what they say."""

from datetime import timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from metro_assets.simulation import oracle
from metro_assets.simulation.truth import OracleUnavailable, oracle_available, true_probabilities
from metro_assets.simulation.world import RAW_TABLES, Shock, TRUTH_TABLES, simulate
from metro_assets.warehouse import ensure_schema, replace_partitions
from metro_assets_tests.conftest import HISTORY_END, START, TINY

FIGURES = ("p_redeem", "p_base", "uplift", "spend_effect")


def _warehouse(shock=None):
    tables = simulate(TINY, 42, START, HISTORY_END, shock=shock)
    con = duckdb.connect()
    ensure_schema(con)
    replace_partitions(con, {t: tables[t] for t in (*RAW_TABLES, *TRUTH_TABLES)}, START, HISTORY_END)
    sim = tables["sim.impression_truth"].unique(["customer_id", "offer_id", "day"], keep="first")
    return con, sim


@pytest.fixture(scope="module")
def plain():
    return _warehouse()


def test_true_probabilities_reproduce_the_simulators_for_its_impressions(plain):
    con, sim = plain
    con.register("shown", sim.select("customer_id", "offer_id", "day").to_arrow())
    got = true_probabilities(con, "shown").join(sim, on=["customer_id", "offer_id", "day"], suffix="_sim")
    assert got.height == sim.height > 1000
    for c in FIGURES:
        np.testing.assert_allclose(got[c].to_numpy(), got[f"{c}_sim"].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=c)
    # stock, fatigue and shocks make nearly every pair different
    assert got["p_redeem"].n_unique() > 0.9 * got.height
    assert {"margin_rate"} <= set(got.columns)


def test_would_buy_anyway_is_of_the_order_of_the_uplift_among_shown_offers(plain):
    _, sim = plain
    base, uplift = sim["p_base"].mean(), sim["uplift"].mean()
    assert 0.2 < base / uplift < 5
    assert (sim["uplift"] < 0).mean() > 0.01          # sleeping dogs
    assert (sim["p_base"] > 0.3).mean() > 0.005        # sure things: regular products running out
    assert sim["spend_effect"].min() < 0


def test_realised_redemptions_match_the_truth(plain):
    """Redemptions drawn in the world agree with the oracle's expectation (position and channel included)."""
    con, sim = plain
    expected = (sim["p_redeem"] * oracle.position_attention(sim["position"].to_numpy())).sum()
    got = con.sql("select count(*) from redemptions").fetchall()[0][0]
    assert 0.7 * expected < got < 1.15 * expected


def test_one_day_for_any_pairs_and_a_scenario_shock():
    shock = Shock(HISTORY_END - timedelta(days=10), HISTORY_END - timedelta(days=5), redemption=1.0)
    con, sim = _warehouse(shock)
    day = HISTORY_END - timedelta(days=7)  # inside the shock
    one_day = sim.filter(pl.col("day") == day)
    con.register("pairs", one_day.select("customer_id", "offer_id").to_arrow())
    got = true_probabilities(con, "pairs", day, shock).join(one_day, on=["customer_id", "offer_id"], suffix="_sim")
    assert got.height == one_day.height > 10 and "day" not in got.columns[:2]
    np.testing.assert_allclose(got["p_redeem"].to_numpy(), got["p_redeem_sim"].to_numpy(), rtol=1e-9)
    plain_truth = true_probabilities(con, "pairs", day).join(one_day, on=["customer_id", "offer_id"])
    assert (plain_truth["p_redeem"] <= got["p_redeem"]).all()  # the shock's logit lifts every pair
    assert (plain_truth["p_redeem"] < got["p_redeem"]).mean() > 0.9


def test_imported_data_has_no_oracle():
    con = duckdb.connect()
    ensure_schema(con)
    con.execute("create table pairs as select 1::BIGINT as customer_id, 1::BIGINT as offer_id")
    assert not oracle_available(con)
    with pytest.raises(OracleUnavailable, match="oracle unavailable"):
        true_probabilities(con, "pairs", START)
    with pytest.raises(ValueError, match="not a table or view name"):
        true_probabilities(con, "pairs; drop table offers", START)
