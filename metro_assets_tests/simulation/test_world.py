"""The simulator: deterministic, range-independent, and showing each World v2 behaviour in its data."""

from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from metro_assets.simulation import calendar, oracle
from metro_assets.simulation.report import calibration_facts
from metro_assets.simulation.world import RAW_TABLES, simulate, window
from metro_assets_tests.conftest import HISTORY_END, START, TINY

LONG_DAYS = 140  # long enough for the repeat-share window (lines after day 56)


@pytest.fixture(scope="module")
def world():
    return simulate(TINY, 42, START, HISTORY_END)


@pytest.fixture(scope="module")
def long_world():
    return simulate(TINY, 42, START, START + timedelta(days=LONG_DAYS))


@pytest.fixture(scope="module")
def con(long_world):
    c = duckdb.connect()
    for name, frame in long_world.items():
        c.register(name.replace("sim.", "sim_"), frame.to_arrow())
    return c


@pytest.fixture(scope="module")
def facts(con):
    return calibration_facts(con, LONG_DAYS)


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


def test_trips_and_baskets_look_like_a_grocery_panel(facts):
    assert 0.8 < facts["trips_per_week"] < 1.5
    assert 7 < facts["lines_mean"] < 14 and facts["lines_p99"] >= 30 and facts["lines_median"] < facts["lines_mean"]
    assert 0.06 < facts["single_line"] < 0.22
    assert 0.35 < facts["discounted_spend"] < 0.65 and 0.08 < facts["discount_share"] < 0.2
    assert 0.55 < facts["top20_spend"] < 0.9  # tiny's 600 products: a flatter head than the default's 0.78


def test_replenishment_makes_customers_repeat_on_a_cycle(facts):
    assert 0.25 < facts["repeat_product"] < 0.6  # tiny's small catalogue repeats more than the default's 0.36
    assert 0.65 < facts["repeat_subcategory"] < 0.92
    assert 0.04 < facts["pairs_3_days"] < 0.2  # tiny: a brand has ~3 products per category
    assert 12 < facts["gap_median"] < 32 and facts["gap_cv_median"] <= 0.7


def test_shelf_life_shortens_the_cycle(con):
    gaps = con.sql("""
        with d as (select distinct o.customer_id, i.product_id, o.day from orders o join order_items i using (order_id)),
             g as (select customer_id, product_id, day - lag(day) over (partition by customer_id, product_id
                                                                       order by day) gap from d)
        select p.shelf_life_days <= 7 as perishable, median(gap) from g join products p using (product_id)
        join sim_customer_products cp using (customer_id, product_id)
        where gap is not null and cp.cycle_days is not null group by 1""").fetchall()
    got = dict(gaps)
    assert got[True] < 0.7 * got[False]


def test_a_promoted_purchase_stocks_up_and_delays_the_next_one(con):
    """After a redeemed purchase of a regular product the next one waits longer (in cycles) than after an ordinary one."""
    rows = con.sql("""
        with d as (select o.customer_id, i.product_id, o.day, bool_or(r.order_id is not null) redeemed
                   from orders o join order_items i using (order_id)
                   left join redemptions r on r.order_id = o.order_id
                    and r.offer_id in (select offer_id from offers f where f.product_id = i.product_id)
                   group by all),
             g as (select customer_id, product_id, redeemed,
                          lead(day) over (partition by customer_id, product_id order by day) - day gap from d)
        select redeemed, avg(gap / cp.cycle_days) from g join sim_customer_products cp using (customer_id, product_id)
        join products p using (product_id)
        where gap is not null and cp.cycle_days is not null and p.shelf_life_days > 30  -- perishables cannot stock up
        group by 1""").fetchall()
    got = dict(rows)
    assert got[True] > 1.3 * got[False]


def test_tastes_below_the_category_steer_product_choice(con):
    """Within a category, the customer's latent taste (not popularity) decides which products they buy."""
    rows = con.sql("""
        with l as (select o.customer_id, i.product_id, count(*) n from orders o join order_items i using (order_id)
                   group by all),
             cp as (select cp.customer_id, cp.product_id, pt.share_in_category,
                           ntile(4) over (partition by cp.customer_id, p.category order by cp.weight) q
                    from sim_customer_products cp join products p using (product_id)
                    join sim_product_traits pt using (product_id) where cp.cycle_days is null)
        select q, avg(coalesce(l.n, 0)), avg(share_in_category) from cp left join l using (customer_id, product_id)
        where q in (1, 4) group by q order by q""").fetchall()
    (_, low_lines, low_pop), (_, high_lines, high_pop) = rows
    assert high_lines > 1.6 * low_lines and abs(high_pop / low_pop - 1) < 0.1


def test_complements_lift_basket_co_occurrence(facts):
    assert facts["lift_real"] >= 2 * facts["lift_shuffled"]


def test_tastes_drift_and_customers_churn(facts, con):
    assert 0.45 < facts["taste_own"] < 0.8 and facts["taste_other"] < 0.25
    assert 0.03 < facts["churn"] < 0.16
    late = con.sql("""select count(*) from orders o join sim_customer_traits t using (customer_id)
                      where o.day >= t.churn_date""").fetchall()[0][0]
    assert late == 0
    joined_later = con.sql("""select count(distinct c.customer_id) from customers c join orders o using (customer_id)
                              where c.join_date > (select min(day) from orders)""").fetchall()[0][0]
    assert joined_later > 20


def test_life_events_shift_a_category(con):
    before, after = con.sql("""
        with l as (select o.customer_id, o.day, p.category from orders o join order_items i using (order_id)
                   join products p using (product_id)),
             e as (select customer_id, life_event_date, life_event_category from sim_customer_traits
                   where life_event_factor > 2 and life_event_date between (select min(day) + 30 from orders)
                                                                      and (select max(day) - 30 from orders))
        select avg((l.category = e.life_event_category)::int) filter (where l.day < e.life_event_date),
               avg((l.category = e.life_event_category)::int) filter (where l.day >= e.life_event_date)
        from l join e using (customer_id)""").fetchall()[0]
    assert after > 1.8 * before


def test_redemptions_happen_inside_ordinary_trips(long_world):
    red = long_world["redemptions"].join(long_world["orders"].select("order_id", "num_items"), on="order_id")
    assert red.height > 100
    assert (red["num_items"] > 1).mean() > 0.85
    lines = long_world["order_items"].join(long_world["redemptions"].select("order_id", "offer_id"), on="order_id")
    lines = lines.join(long_world["offers"].select("offer_id", pl.col("product_id").alias("offered")), on="offer_id")
    hit = lines.filter(pl.col("product_id") == pl.col("offered"))
    assert hit.height == red.height and hit["is_promo"].all() and (hit["discount_amount"] > 0).all()


def test_redemptions_follow_an_impression_within_a_week_and_respect_caps(world):
    red = world["redemptions"].join(world["impressions"], on=["customer_id", "offer_id"], suffix="_imp")
    red = red.filter(
        (pl.col("shown_timestamp") <= pl.col("redeemed_timestamp"))
        & (pl.col("redeemed_timestamp") < pl.col("shown_timestamp") + pl.duration(days=7))
    )
    assert red["redemption_id"].n_unique() == world["redemptions"].height > 0
    used = world["redemptions"].group_by("offer_id").len().join(world["offers"], on="offer_id")
    assert used.filter(pl.col("len") > pl.col("max_redemptions")).height == 0


def test_top_positions_are_redeemed_more(con):
    top, low = con.sql("""
        select avg(r) filter (where position <= 2), avg(r) filter (where position >= 6) from (
            select i.position, exists (select 1 from redemptions r where r.customer_id = i.customer_id
                                       and r.offer_id = i.offer_id)::int r from impressions i)""").fetchall()[0]
    assert top > 1.3 * low


def test_the_logged_policy_explores_with_exact_propensities(long_world):
    imp = long_world["impressions"]
    lists = imp.group_by("customer_id", "day").agg(n=pl.len(), top=pl.col("position").max(),
                                                   distinct=pl.col("position").n_unique())
    assert (lists["n"] == lists["top"]).all() and (lists["n"] == lists["distinct"]).all()  # slots 1..n
    explored = imp.filter("is_exploration")
    assert 0.05 < explored.height / imp.height < 0.15
    assert (explored["propensity"] < 0.1).all() and (explored["propensity"] > 0).all()
    assert set(imp.filter(~pl.col("is_exploration"))["propensity"].unique().to_list()) <= {0.9, 1.0}


def test_the_holdout_sees_no_offers_and_is_redrawn_every_four_weeks(long_world):
    a = long_world["experiment_assignments"]
    share = a.group_by("from_date").agg(h=(pl.col("arm") == "holdout").mean())
    assert share["h"].is_between(0.07, 0.13).all() and share.height == LONG_DAYS // 28
    assert ((a["to_date"] - a["from_date"]).dt.total_days() == 27).all() and a["day"].equals(a["from_date"])
    seen = long_world["impressions"].join(a, on="customer_id").filter(
        pl.col("day").is_between(pl.col("from_date"), pl.col("to_date")) & (pl.col("arm") == "holdout"))
    assert seen.height == 0
    arms = a.pivot(on="from_date", index="customer_id", values="arm").drop_nulls()
    assert (arms[:, 1] != arms[:, 2]).mean() > 0.1  # re-drawn


def test_exploration_and_holdout_can_be_switched_off():
    tables = simulate(TINY, 42, START, START + timedelta(days=10), exploration=0.0, holdout_share=0.0)
    assert not tables["impressions"]["is_exploration"].any()
    assert (tables["impressions"]["propensity"] == 1.0).all()
    assert (tables["experiment_assignments"]["arm"] == "treatment").all()


def test_the_oracle_rewards_depth_taste_and_sensitivity_and_tires():
    base = dict(depth=np.array([0.2]), depth_threshold=np.array([0.1]), affinity=np.array([0.5]),
                promo_sensitivity=np.array([0.3]), response_shift=np.array([0.0]), brand_match=np.array([False]),
                brand_loyalty=np.array([0.3]), month_end=np.array([False]), fatigue_offer=np.array([0]),
                fatigue_category=np.array([0]), shock=np.array([0.0]))
    p0 = oracle.persuasion_probability(**base)[0]
    for key, value in [("depth", 0.5), ("affinity", 3.0), ("promo_sensitivity", 0.9), ("month_end", True),
                       ("brand_match", True)]:
        assert oracle.persuasion_probability(**{**base, key: np.array([value])})[0] > p0, key
    for key, value in [("fatigue_offer", 2), ("fatigue_category", 4), ("depth_threshold", 0.3)]:
        assert oracle.persuasion_probability(**{**base, key: np.array([value])})[0] < p0, key
    assert np.all(np.diff(oracle.position_attention(np.arange(1, 11))) < 0)
    shocks = oracle.daily_shock(np.arange(1000), np.full(1000, 300))
    assert abs(shocks.mean()) < 0.1 and 0.4 < shocks.std() < 0.9
    assert not np.array_equal(shocks, oracle.daily_shock(np.arange(1000), np.full(1000, 301)))


def test_stock_raises_the_chance_to_buy():
    line = np.full((1, 7), 0.001)
    pv = np.full((1, 7), 0.15)
    args = dict(line_prob=line, topup=np.array([0.4]), lines=np.array([8.0]))
    due_now = oracle.purchase_probability(pv, np.array([0.0]), **args)[0]
    due_later = oracle.purchase_probability(pv, np.array([20.0]), **args)[0]
    not_regular = oracle.purchase_probability(pv, np.array([np.nan]), **args)[0]
    assert due_now > 3 * due_later and not_regular > due_later  # a full cupboard buys less than no habit


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
