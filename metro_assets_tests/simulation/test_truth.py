"""The oracle over the warehouse reproduces the simulator's own probabilities."""

from datetime import timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from metro_assets.simulation import world
from metro_assets.simulation.truth import OracleUnavailable, oracle_available, true_probabilities
from metro_assets.simulation.world import RAW_TABLES, Shock, TRUTH_TABLES, simulate
from metro_assets.warehouse import ensure_schema, replace_partitions
from metro_assets_tests.conftest import HISTORY_END, START, TINY


def _simulator_probabilities(shock=None):
    """(customer, offer, day, p_redeem, p_base) of every impression, from the simulator's internals."""
    n_days = (HISTORY_END - START).days
    days = world._days(START, n_days)
    pop, cat = world._Population(TINY, 42), world._Catalogue(TINY, 42)
    offers = world._offers(TINY, 42, cat, n_days)
    _, lines = world._regular_orders(TINY, 42, pop, cat, days, shock)
    imp = world._impressions(TINY, 42, pop, cat, offers, days)
    logit = world._shock_arrays(shock, days)[3]
    p, p_base = world.impression_probabilities(pop, cat, offers, imp, world._last_purchase_day(lines, cat), logit)
    return pl.DataFrame({
        "customer_id": pop.customer_id[imp["customer"]],
        "offer_id": offers["offer_id"][imp["offer"]],
        "day": [START + timedelta(days=int(t)) for t in imp["t"]],
        "p_sim": p,
        "p_base_sim": p_base,
    }).unique(["customer_id", "offer_id", "day"])


def _warehouse(shock=None):
    tables = simulate(TINY, 42, START, HISTORY_END, shock=shock)
    con = duckdb.connect()
    ensure_schema(con)
    replace_partitions(con, {t: tables[t] for t in (*RAW_TABLES, *TRUTH_TABLES)}, START, HISTORY_END)
    return con


def test_true_probabilities_reproduce_the_simulators_for_its_impressions():
    con = _warehouse()
    sim = _simulator_probabilities()
    con.register("shown", sim.select("customer_id", "offer_id", "day").to_arrow())
    got = true_probabilities(con, "shown").join(sim, on=["customer_id", "offer_id", "day"])
    assert got.height == sim.height > 1000
    np.testing.assert_allclose(got["p_redeem"].to_numpy(), got["p_sim"].to_numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["p_base"].to_numpy(), got["p_base_sim"].to_numpy(), rtol=1e-12, atol=0)
    # recency matters: some impressions follow a regular purchase in the category, some never had one
    assert got["p_redeem"].n_unique() > 0.9 * got.height


def test_one_day_for_any_pairs_and_a_scenario_shock():
    shock = Shock(HISTORY_END - timedelta(days=10), HISTORY_END - timedelta(days=5), redemption=1.0)
    con = _warehouse(shock)
    sim = _simulator_probabilities(shock)
    day = HISTORY_END - timedelta(days=7)  # inside the shock
    one_day = sim.filter(pl.col("day") == day)
    con.register("pairs", one_day.select("customer_id", "offer_id").to_arrow())
    got = true_probabilities(con, "pairs", day, shock).join(one_day, on=["customer_id", "offer_id"])
    assert got.height == one_day.height > 10 and "day" not in got.columns[:2]
    np.testing.assert_allclose(got["p_redeem"].to_numpy(), got["p_sim"].to_numpy(), rtol=1e-12)
    plain = true_probabilities(con, "pairs", day).join(one_day, on=["customer_id", "offer_id"])
    assert (plain["p_redeem"] < got["p_redeem"]).all()  # the shock's logit lifts every pair


def test_imported_data_has_no_oracle():
    con = duckdb.connect()
    ensure_schema(con)
    con.execute("create table pairs as select 1::BIGINT as customer_id, 1::BIGINT as offer_id")
    assert not oracle_available(con)
    with pytest.raises(OracleUnavailable, match="oracle unavailable"):
        true_probabilities(con, "pairs", START)
    with pytest.raises(ValueError, match="not a table or view name"):
        true_probabilities(con, "pairs; drop table offers", START)
