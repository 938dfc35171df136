"""The feature assets through real Dagster runs: point in time, idempotent, same as the ranker's query."""

from datetime import timedelta

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from metro_assets.features import compute
from metro_assets_tests.features.runs import DAILY_TABLES, MID_DAY, RUN_DAY, run_day, snapshot


def _plant_later_events(path, day):
    """Add and change events dated ``day`` and later: none may move ``day``'s features."""
    con = duckdb.connect(str(path))
    later = [day, day + timedelta(days=3)]
    for n, when in enumerate(later):
        ts = f"timestamp '{when} 09:00:00'"
        # a burst of promo orders by the first customers, for every product on offer
        con.execute(f"""
            insert into orders select 9000000 + {n} * 10000 + c.customer_id, c.customer_id, c.home_store_id,
                   {ts}, 100.0, 3, date '{when}'
            from customers c where c.customer_id <= 50""")
        con.execute(f"""
            insert into order_items select 9000000 + {n} * 100000 + row_number() over (), o.order_id,
                   f.product_id, 2, 5.0, true, 2.5, date '{when}'
            from orders o cross join (select distinct product_id from offers limit 3) f
            where o.order_id between 9000000 + {n} * 10000 and 9000000 + {n} * 10000 + 9999""")
        con.execute(f"""
            insert into impressions (impression_id, customer_id, offer_id, shown_timestamp, channel, day)
            select 9000000 + {n} * 100000 + row_number() over (), c.customer_id,
                   o.offer_id, {ts}, 'app', date '{when}'
            from customers c cross join offers o where c.customer_id <= 50 and o.end_date >= date '{day}'""")
        con.execute(f"""
            insert into redemptions select 9000000 + {n} * 100000 + row_number() over (), c.customer_id,
                   o.offer_id, 9000000 + {n} * 10000 + c.customer_id, {ts} + interval 1 hour, date '{when}'
            from customers c cross join offers o where c.customer_id <= 50 and o.end_date >= date '{day}'""")
    # change what already happened on day and later
    con.execute(f"update orders set total_amount = total_amount * 3 where day >= date '{day}'")
    con.execute(f"delete from order_items where day >= date '{day}' and not is_promo")
    # a customer joining on the day, an offer published on the day
    con.execute(f"insert into customers select customer_id + 100000, segment, home_store_id, date '{day}', "
                f"loyalty_tier, email_consent, date '{day}' from customers where customer_id = 1")
    con.execute(f"insert into offers select offer_id + 100000, product_id, discount_type, discount_value, "
                f"date '{day}', date '{day}' + 10, null, null, null, date '{day}' from offers limit 1")
    con.close()


def test_features_and_pool_of_a_day_ignore_events_of_that_day_and_later(tiny_warehouse):
    run_day(MID_DAY)
    before = snapshot(tiny_warehouse, MID_DAY)
    assert all(frame.height > 0 for frame in before.values())

    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    _ = con.execute(f"create temp table req as select customer_id, date '{MID_DAY + timedelta(days=4)}' as day "
                    "from customers where customer_id <= 50")
    later_before = compute.customer_features(con, "req").sort("customer_id")
    con.close()

    _plant_later_events(tiny_warehouse, MID_DAY)
    run_day(MID_DAY)
    after = snapshot(tiny_warehouse, MID_DAY)
    for table in before:
        assert_frame_equal(after[table], before[table], check_exact=True)

    # the planted events are real: a later day does see them
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    _ = con.execute(f"create temp table req as select customer_id, date '{MID_DAY + timedelta(days=4)}' as day "
                    "from customers where customer_id <= 50")
    later_after = compute.customer_features(con, "req").sort("customer_id")
    con.close()
    assert not later_after["monetary"].equals(later_before["monetary"])


def test_rematerializing_a_day_replaces_it(tiny_warehouse):
    run_day(RUN_DAY)
    first = snapshot(tiny_warehouse, RUN_DAY)
    result = run_day(RUN_DAY)
    again = snapshot(tiny_warehouse, RUN_DAY)
    for table in first:
        assert_frame_equal(again[table], first[table])
        assert again[table].height > 0
        assert again[table].select(DAILY_TABLES[table]).is_duplicated().sum() == 0
    assert all(check.passed for check in result.get_asset_check_evaluations())


def test_the_tables_scoring_reads_equal_bit_for_bit_what_training_computes(tiny_warehouse):
    days = [MID_DAY, RUN_DAY]
    for day in days:
        run_day(day)
    con = duckdb.connect(str(tiny_warehouse))
    # the training path: pairs of two days in one request relation, as the ranker sends them
    _ = con.execute("create temp table pairs as select customer_id, offer_id, day from candidate_pool")
    assert con.sql("select count(distinct day) from pairs").fetchall()[0][0] == 2
    computed = compute.feature_matrix(con, "pairs")
    # the scoring path: each day's stored feature tables
    stored = []
    for day in days:
        _ = con.execute("create or replace temp table day_pairs as select * from pairs where day = ?", [day])
        stored.append(compute.stored_matrix(con, "day_pairs", day))
    con.close()
    stored = pl.concat(stored)
    flags = [f"missing_{t}" for t in compute.FEATURE_TABLES]
    assert not stored.select(pl.any_horizontal(flags).any()).item(), "every pool pair has its three feature rows"
    assert computed.columns == ["customer_id", "offer_id", "day", *compute.MODEL_FEATURES]
    assert stored.drop(flags).columns == computed.columns
    keys = ["customer_id", "offer_id", "day"]
    assert computed.height == stored.height > 1000
    # exact: same dtypes, same bits (NaN and null included), not merely close
    assert_frame_equal(stored.drop(flags).sort(keys), computed.sort(keys), check_exact=True)
    assert computed.select(pl.col(compute.MODEL_FEATURES).null_count()).sum_horizontal().item() > 0  # nulls compared


def test_feature_values_match_an_independent_polars_computation(tiny_warehouse):
    run_day(MID_DAY)
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    orders = con.sql("select * from orders").pl()
    lines = con.sql("select i.*, o.customer_id from order_items i join orders o using (order_id)").pl()
    features = con.sql(f"select * from customer_features where day = date '{MID_DAY}'").pl()
    offers = con.sql(f"""select f.*, o.discount_type as t, o.discount_value as v, p.base_price
                         from offer_features f join offers o using (offer_id) join products p
                         on p.product_id = o.product_id where f.day = date '{MID_DAY}'""").pl()
    impressions = con.sql(f"select count(*) from impressions where day < date '{MID_DAY}'").fetchall()[0][0]
    redemptions = con.sql(f"select count(*) from redemptions where day < date '{MID_DAY}'").fetchall()[0][0]
    con.close()

    window = orders.filter((pl.col("day") < MID_DAY) & (pl.col("day") >= MID_DAY - timedelta(days=90)))
    expected = window.group_by("customer_id").agg(
        frequency=pl.len(), monetary=pl.col("total_amount").sum(),
        last=pl.col("day").max())
    promo = (lines.filter((pl.col("day") < MID_DAY) & (pl.col("day") >= MID_DAY - timedelta(days=90)))
             .group_by("customer_id").agg(promo_affinity=pl.col("is_promo").mean()))
    got = features.join(expected, on="customer_id", how="left").join(promo, on="customer_id", how="left",
                                                                     suffix="_expected")
    assert (got["frequency"] == got["frequency_right"].fill_null(0)).all()
    assert ((got["monetary"] - got["monetary_right"].fill_null(0)).abs() < 1e-6).all()
    assert ((got["promo_affinity"] - got["promo_affinity_expected"]).abs().fill_null(0) < 1e-9).all()
    recency = got.filter(pl.col("last").is_not_null())
    assert (recency["recency_days"] == (pl.Series([MID_DAY] * recency.height) - recency["last"]).dt.total_days()
            ).all()
    # cold customers: no order before the day, so no recency and no rates
    cold = features.filter(pl.col("recency_days").is_null())
    assert cold.height > 0 and (cold["frequency"] == 0).all() and cold["promo_affinity"].is_null().all()

    # discount depth for the three types, and the smoothed rate
    for kind, rule in {
        "percentage": pl.col("v") / 100,
        "fixed_amount": pl.min_horizontal(pl.col("v") / pl.col("base_price"), pl.lit(1.0)),
        "bogo": pl.col("v") / (1 + pl.col("v")),
    }.items():
        subset = offers.filter(pl.col("t") == kind)
        assert subset.height > 0
        assert ((subset["discount_depth"] - subset.select(rule).to_series()).abs() < 1e-12).all()
    g = redemptions / impressions
    m = compute.PRIOR_WEIGHT
    rate = (offers["redemptions_before"] + m * g) / (offers["impressions_before"] + m)
    assert ((offers["historical_redemption_rate"] - rate).abs() < 1e-12).all()
    assert offers["historical_redemption_rate"].is_between(0, 1).all()


def test_product_and_exposure_features_match_an_independent_polars_computation(tiny_warehouse):
    run_day(MID_DAY)
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    items = con.sql("select i.product_id, i.day, o.customer_id from order_items i join orders o using (order_id)").pl()
    products = con.sql("select product_id, category, brand, day as created from products").pl()
    offers = con.sql("select offer_id, product_id from offers").pl().join(products, on="product_id")
    shown = con.sql("select customer_id, offer_id, day from impressions").pl().join(offers, on="offer_id")
    offer_f = con.sql(f"select * from offer_features where day = date '{MID_DAY}'").pl()
    pairs = con.sql(f"select * from interaction_features where day = date '{MID_DAY}'").pl().join(
        offers, on="offer_id")
    con.close()

    # popularity: add-one shares of the 90 days' lines among the products known before the day
    lines = items.filter(pl.col("day").is_between(MID_DAY - timedelta(days=90), MID_DAY, closed="left")).join(
        products, on="product_id")
    known = products.filter(pl.col("created") < MID_DAY)
    per_product = lines.group_by("product_id").agg(n=pl.len())
    cat = lines.group_by("category").agg(n_cat=pl.len()).join(
        known.group_by("category").agg(k_cat=pl.len()), on="category", how="full", coalesce=True)
    brand = lines.group_by("category", "brand").agg(n_brand=pl.len()).join(
        known.group_by("category", "brand").agg(k_brand=pl.len()), on=["category", "brand"], how="full",
        coalesce=True)
    expected = (offer_f.select("offer_id", "product_id", "category", "brand", "product_share_in_category",
                               "product_share_in_brand")
                .join(per_product, on="product_id", how="left").join(cat, on="category", how="left")
                .join(brand, on=["category", "brand"], how="left").fill_null(0)
                .with_columns(c=(pl.col("n") + 1) / (pl.col("n_cat") + pl.col("k_cat") + 1),
                              b=(pl.col("n") + 1) / (pl.col("n_brand") + pl.col("k_brand") + 1)))
    assert expected.height > 0 and (expected["n"] > 0).any()
    assert ((expected["product_share_in_category"] - expected["c"]).abs() < 1e-12).all()
    assert ((expected["product_share_in_brand"] - expected["b"]).abs() < 1e-12).all()

    # the customer's purchase days of the product, the gap between them, and 28 days of impressions
    days = (items.filter(pl.col("day") < MID_DAY).unique(["customer_id", "product_id", "day"])
            .group_by("customer_id", "product_id").agg(n=pl.len(), first=pl.col("day").min(), last=pl.col("day").max()))
    recent = shown.filter(pl.col("day").is_between(MID_DAY - timedelta(days=28), MID_DAY, closed="left"))
    got = (pairs.join(days, on=["customer_id", "product_id"], how="left")
           .join(recent.group_by("customer_id", "offer_id").agg(o=pl.len()), on=["customer_id", "offer_id"],
                 how="left")
           .join(recent.group_by("customer_id", "category").agg(c=pl.len()), on=["customer_id", "category"],
                 how="left"))
    assert (got["product_purchase_days"] == got["n"].fill_null(0)).all()
    since = (pl.lit(MID_DAY) - pl.col("last")).dt.total_days()
    assert got.select((pl.col("days_since_product_purchase") == since).fill_null(True).all()).item()
    assert (got["days_since_product_purchase"].is_null() == got["last"].is_null()).all()
    gap = (pl.col("last") - pl.col("first")).dt.total_days() / (pl.col("n") - 1)
    due = got.filter(pl.col("n") >= 2).select(pl.col("product_due_ratio"), expected=since / gap)
    assert due.height > 0 and ((due["product_due_ratio"] - due["expected"]).abs() < 1e-12).all()
    assert got.filter(pl.col("n").fill_null(0) < 2)["product_due_ratio"].is_null().all()
    assert (got["offer_shown_28d"] == got["o"].fill_null(0)).all()
    assert (got["category_shown_28d"] == got["c"].fill_null(0)).all()
    assert (got["category_shown_28d"] > 0).any() and (got["product_purchase_days"] > 0).any()


def test_product_popularity_counts_the_window_and_the_products_known_before_the_day():
    from datetime import date

    from metro_assets.warehouse import ensure_schema

    day = date(2025, 6, 1)
    con = duckdb.connect()
    ensure_schema(con)
    # dairy: products 1-3 of brand A known before the day; 4 of brand B and 5 of brand A appear on the day
    con.execute("""insert into products (product_id, name, category, subcategory, brand, base_price, margin,
                   shelf_life_days, day) values
                   (1, 'a', 'dairy', 'milk', 'A', 1, 0.3, 7, date '2025-01-01'),
                   (2, 'b', 'dairy', 'milk', 'A', 1, 0.3, 7, date '2025-01-01'),
                   (3, 'c', 'dairy', 'milk', 'A', 1, 0.3, 7, date '2025-01-01'),
                   (4, 'd', 'dairy', 'milk', 'B', 1, 0.3, 7, date '2025-06-01'),
                   (5, 'e', 'dairy', 'milk', 'A', 1, 0.3, 7, date '2025-06-01')""")
    con.execute("""insert into offers (offer_id, product_id, discount_type, discount_value, start_date, end_date,
                   day) select product_id, product_id, 'percentage', 10, date '2025-05-01', date '2025-07-01',
                   date '2025-05-01' from products""")
    # product 1: 6 lines in the window, 1 line 91 days before (outside), 2 lines on the day (the future);
    # product 2: 4 lines in the window
    lines = [(1, d) for d in ["2025-05-31"] * 3 + ["2025-03-03"] * 3 + ["2025-03-02", "2025-06-01", "2025-06-01"]]
    lines += [(2, "2025-05-20")] * 4
    for i, (product, d) in enumerate(lines):
        con.execute("insert into orders values (?, 1, 1, ?::TIMESTAMP, 1, 1, ?)", [i, d, d])
        con.execute("insert into order_items values (?, ?, ?, 1, 1, false, 0, ?)", [i, i, product, d])
    con.execute(f"create temp table req as select offer_id, date '{day}' as day from offers")
    features = compute.offer_features(con, "req")
    con.close()
    got = dict(features.select("offer_id", "product_share_in_category").iter_rows())
    brand = dict(features.select("offer_id", "product_share_in_brand").iter_rows())
    # 10 category lines in [day - 90, day), 3 dairy products known before the day, + 1 for a product new on it
    assert got[1] == pytest.approx(7 / 14) and got[2] == pytest.approx(5 / 14) and got[3] == pytest.approx(1 / 14)
    assert got[4] == pytest.approx(1 / 14) and got[5] == pytest.approx(1 / 14)
    # within the brand: brand A's 10 lines and 3 products; brand B has neither
    assert brand[1] == pytest.approx(7 / 14) and brand[4] == pytest.approx(1 / 1)


def test_requests_must_name_a_relation(tiny_warehouse):
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    with pytest.raises(ValueError, match="not a table or view name"):
        compute.customer_features(con, "customers; drop table orders")
    con.close()


def test_a_range_run_writes_each_day_like_single_days(tiny_warehouse):
    from dagster import DagsterInstance, materialize
    from dagster_duckdb import DuckDBResource

    from metro_assets_tests.features.runs import daily_assets

    tags = {"dagster/asset_partition_range_start": "2025-09-25", "dagster/asset_partition_range_end": "2025-09-26"}
    result = materialize(daily_assets(), tags=tags, instance=DagsterInstance.ephemeral(),
                         resources={"warehouse": DuckDBResource(database=str(tiny_warehouse))})
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    ranged = snapshot(tiny_warehouse, RUN_DAY)
    run_day(RUN_DAY)
    single = snapshot(tiny_warehouse, RUN_DAY)
    for table in single:
        assert single[table].height > 0
        assert_frame_equal(ranged[table], single[table])
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    days = con.sql("select count(distinct day) from candidate_pool").fetchall()[0][0]
    con.close()
    assert days == 2
