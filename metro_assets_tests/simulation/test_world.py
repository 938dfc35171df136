"""The simulator: deterministic, range-independent, and showing the spec's behaviours."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from metro_assets.simulation import calendar, oracle
from metro_assets.simulation.world import RAW_TABLES, simulate, window
from metro_assets_tests.conftest import HISTORY_END, START, TINY


@pytest.fixture(scope="module")
def world():
    return simulate(TINY, 42, START, HISTORY_END)


def test_same_seed_gives_the_same_rows(world):
    again = simulate(TINY, 42, START, HISTORY_END)
    for table in RAW_TABLES:
        assert world[table].equals(again[table]), table


def test_rows_of_a_day_do_not_depend_on_the_range_simulated(world):
    cut = START + timedelta(days=20)
    short = window(simulate(TINY, 42, START, cut), START, cut)
    long = window(world, START, cut)
    for table in RAW_TABLES:
        assert short[table].height > 0 or table == "redemptions"
        assert short[table].equals(long[table]), table


def test_another_seed_gives_another_world(world):
    other = simulate(TINY, 43, START, HISTORY_END)
    assert not other["orders"].equals(world["orders"])


def test_segments_have_the_target_shares(world):
    shares = world["customers"].group_by("segment").len().with_columns(s=pl.col("len") / pl.col("len").sum())
    got = dict(zip(shares["segment"], shares["s"]))
    assert got == pytest.approx({"budget": 0.4, "premium": 0.2, "family": 0.3, "horeca": 0.1}, abs=0.001)


def test_budget_customers_buy_on_promotion_more_than_premium(world):
    lines = (
        world["order_items"].drop("day").join(world["orders"].drop("day"), on="order_id")
        .join(world["customers"], on="customer_id")
        .group_by("segment").agg(pl.col("is_promo").mean())
    )
    promo = dict(zip(lines["segment"], lines["is_promo"]))
    assert promo["budget"] > 1.5 * promo["premium"]


def test_redemptions_follow_an_impression_within_a_week_and_respect_caps(world):
    red = world["redemptions"].join(world["impressions"], on=["customer_id", "offer_id"], suffix="_imp")
    red = red.filter(
        (pl.col("shown_timestamp") <= pl.col("redeemed_timestamp"))
        & (pl.col("redeemed_timestamp") < pl.col("shown_timestamp") + pl.duration(days=7))
    )
    assert red["redemption_id"].n_unique() == world["redemptions"].height > 0
    used = world["redemptions"].group_by("offer_id").len().join(world["offers"], on="offer_id")
    assert used.filter(pl.col("len") > pl.col("max_redemptions")).height == 0


def test_redemptions_create_promo_orders(world):
    items = world["order_items"].join(world["redemptions"], on="order_id")
    assert items.height == world["redemptions"].height
    assert items["is_promo"].all() and (items["discount_amount"] > 0).all()


def test_about_the_target_number_of_offers_is_active(world):
    offers = world["offers"]
    day = START + timedelta(days=20)
    active = offers.filter((pl.col("start_date") <= day) & (pl.col("end_date") >= day)).height
    assert 0.5 * TINY.active_offers <= active <= 1.6 * TINY.active_offers
    assert set(offers["discount_type"].unique()) == {"percentage", "fixed_amount", "bogo"}


def test_calendar_multipliers_show_weekly_cycle_payday_and_holidays():
    days = np.array(["2025-11-20", "2025-11-22", "2025-11-29", "2025-12-20", "2026-04-02", "2025-07-31"],
                    dtype="datetime64[D]")
    m = calendar.visit_multiplier(days)
    assert m[1] > m[0]                      # Saturday over Thursday
    assert m[2] > m[1]                      # Black Friday weekend
    assert m[3] > m[1]                      # Christmas run
    assert calendar.in_easter_week(days)[4]  # Easter 2026 is April 5
    assert calendar.is_payday(days)[5]
    assert calendar.easter(2025) == date(2025, 4, 20)
    assert calendar.black_friday(2025) == date(2025, 11, 28)


def test_oracle_rewards_depth_affinity_and_sensitivity():
    base = dict(depth=np.array([0.1]), preference=np.array([0.05]), promo_sensitivity=np.array([0.3]),
                days_since_category=np.array([np.nan]), brand_match=np.array([False]),
                brand_loyalty=np.array([0.3]), promo_only=np.array([False]), discount_blind=np.array([False]))
    p0 = oracle.uplift_probability(**base)[0]
    for key, value in [("depth", 0.5), ("preference", 0.3), ("promo_sensitivity", 0.9), ("days_since_category", 3.0)]:
        assert oracle.uplift_probability(**{**base, key: np.array([value])})[0] > p0, key
    assert oracle.uplift_probability(**{**base, "discount_blind": np.array([True])})[0] < p0
    assert oracle.redemption_probability(np.array([0.2]), np.array([0.0]))[0] == pytest.approx(0.2)
