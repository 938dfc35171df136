"""The candidate pool through real Dagster runs: eligibility, cold start, bad input, metadata."""

from datetime import timedelta

import duckdb
import pytest

from metro_assets.candidates.checks import candidate_checks
from metro_assets.candidates.retrieval import COLD_STRATEGIES, WARM_STRATEGIES, segment_in_scope, store_in_scope
from metro_assets.checking import evaluate_checks
from metro_assets.errors import SettingError
from metro_assets.settings import load_settings
from metro_assets_tests.features.runs import MID_DAY, RUN_DAY, pool_metadata, run_day

NEXT = RUN_DAY + timedelta(days=1)


def _sql(path, query, read_only=False):
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        return con.sql(query).fetchall() if query.lstrip().lower().startswith(("select", "with")) \
            else con.execute(query).fetchall()
    finally:
        con.close()


def _check_outcomes(path, day=RUN_DAY):
    con = duckdb.connect(str(path))
    try:
        outcomes = evaluate_checks(con, candidate_checks(load_settings().candidates), day, day + timedelta(days=1))
    finally:
        con.close()
    return {o.check.name: o for o in outcomes}


def test_pool_covers_every_customer_with_eligible_pairs_only(tiny_warehouse):
    result = run_day(MID_DAY)
    meta = pool_metadata(result)
    assert all(c.passed for c in result.get_asset_check_evaluations())
    assert meta["customers_covered"] == meta["customers_with_eligible_offers"] == meta["customers"] > 1000
    assert 0 < meta["mean_candidates"] <= meta["max_candidates"] <= 200
    assert abs(sum(meta["strategy_shares"].values()) - 1) < 1e-3
    # a week of later redemptions exists inside the tiny history: recall is measured
    assert meta["redemptions"] > 0
    assert 0 < meta["retrieval_recall"] <= meta["reference_recall"] <= 1
    strategies = dict(_sql(tiny_warehouse, "select strategy, count(*) from candidate_pool group by all", True))
    assert set(strategies) <= set(WARM_STRATEGIES + COLD_STRATEGIES)
    assert {"category_affinity", "segment_popularity"} <= set(strategies)


def test_small_quotas_leave_room_for_every_warm_strategy(tiny_warehouse, monkeypatch):
    # tiny has 40 offers: the default quotas (80/60/40/20) fill the pool before high margin is reached
    for name in ("CATEGORY", "SEGMENT", "REPEAT"):
        monkeypatch.setenv(f"METRO_CANDIDATES_{name}", "2")
    run_day(MID_DAY)
    strategies = dict(_sql(tiny_warehouse, "select strategy, count(*) from candidate_pool group by all", True))
    assert set(WARM_STRATEGIES) - {"embedding"} <= set(strategies)  # embedding: off by default (test_embeddings)


@pytest.mark.parametrize("plant", ["expired", "out_of_store", "out_of_segment", "capped", "unpublished"])
def test_eligibility_check_catches_a_planted_pair(tiny_warehouse, plant):
    run_day(RUN_DAY)
    assert _check_outcomes(tiny_warehouse)["candidate_pool_has_only_eligible_pairs"].passed
    customer, store, segment = _sql(tiny_warehouse, "select customer_id, home_store_id, segment from "
                                    "customer_features where day = date '2025-09-26' order by 1 limit 1", True)[0]
    offer = {
        "expired": "select offer_id from offers where end_date < date '2025-09-26' limit 1",
        "unpublished": "select offer_id from offers where start_date <= date '2025-09-26' limit 1",
        "out_of_store": "select offer_id from offers where start_date <= date '2025-09-26' "
                        "and end_date >= date '2025-09-26' limit 1",
        "out_of_segment": "select offer_id from offers where start_date <= date '2025-09-26' "
                          "and end_date >= date '2025-09-26' limit 1",
        "capped": "select offer_id from offers where start_date <= date '2025-09-26' "
                  "and end_date >= date '2025-09-26' limit 1",
    }[plant]
    offer_id = _sql(tiny_warehouse, offer, True)[0][0]
    change = {
        "expired": None,
        "unpublished": f"update offers set day = date '2025-09-26' where offer_id = {offer_id}",
        "out_of_store": f"update offers set store_scope = '{store % 4 + 1}' where offer_id = {offer_id}",
        "out_of_segment": f"update offers set segment_scope = 'nobody' where offer_id = {offer_id}",
        "capped": f"update offers set max_redemptions = 0 where offer_id = {offer_id}",
    }[plant]
    if change:
        _sql(tiny_warehouse, change)
    _sql(tiny_warehouse, f"delete from candidate_pool where customer_id = {customer} and offer_id = {offer_id}")
    _sql(tiny_warehouse, f"insert into candidate_pool values ({customer}, {offer_id}, date '2025-09-26', 'high_margin')")
    outcome = _check_outcomes(tiny_warehouse)["candidate_pool_has_only_eligible_pairs"]
    assert not outcome.passed and outcome.failing >= 1
    # only pairs of the planted offer are flagged (changing an offer makes all its pairs ineligible)
    assert all(example.split(":")[1] == str(offer_id) for example in outcome.examples)


def test_cap_and_uniqueness_checks_catch_planted_rows(tiny_warehouse, monkeypatch):
    monkeypatch.setenv("METRO_MAX_CANDIDATES", "5")
    run_day(RUN_DAY)
    sizes = _sql(tiny_warehouse, "select max(n) from (select count(*) n from candidate_pool group by customer_id)", True)
    assert sizes[0][0] == 5  # the cap holds
    _sql(tiny_warehouse, "insert into candidate_pool select * from candidate_pool limit 1")
    outcomes = _check_outcomes(tiny_warehouse)
    assert not outcomes["candidate_pool_has_one_row_per_pair"].passed
    assert not outcomes["candidate_pool_is_within_the_cap"].passed


def test_cold_start_customers_get_cold_start_candidates(tiny_warehouse):
    # a customer who joined before the day and never ordered, in the smallest store
    _sql(tiny_warehouse, "insert into customers values (777777, 'premium', 4, date '2025-09-20', 'bronze', true, "
                         "date '2025-09-20')")
    run_day(RUN_DAY)
    rows = _sql(tiny_warehouse, "select strategy, count(*) from candidate_pool where customer_id = 777777 "
                                "group by all", True)
    assert rows and {s for s, _ in rows} <= set(COLD_STRATEGIES)
    cold = _sql(tiny_warehouse, """
        select count(*), count(*) filter (where customer_id in (select customer_id from candidate_pool))
        from customer_features where day = date '2025-09-26' and recency_days is null""", True)[0]
    assert cold[0] > 1 and cold[0] == cold[1]


def test_malformed_scopes_are_read_as_a_user_expects(tiny_warehouse):
    live = [r[0] for r in _sql(tiny_warehouse, "select offer_id from offers where start_date <= date '2025-09-26' "
                                               "and end_date >= date '2025-09-26' and day < date '2025-09-26' "
                                               "order by offer_id limit 5", True)]
    blank, spaced, unknown, garbage, segments = live
    _sql(tiny_warehouse, f"""update offers set max_redemptions = null, store_scope = case offer_id
            when {blank} then '  ' when {spaced} then ' 1 , 2,' when {unknown} then '999'
            when {garbage} then 'north;south' else store_scope end,
            segment_scope = case when offer_id = {segments} then ' Premium ,family ' when offer_id = {blank}
            then '' else null end where offer_id in ({', '.join(map(str, live))})""")
    meta = pool_metadata(run_day(RUN_DAY))
    assert meta["offers_with_unknown_store_ids"] == 2 and meta["offers_with_blank_scopes"] == 1
    eligible = dict(_sql(tiny_warehouse, f"""
        select p.offer_id, list(distinct c.home_store_id order by c.home_store_id)
        from candidate_pool p join customers c using (customer_id)
        where p.offer_id in ({', '.join(map(str, live))}) group by all""", True))
    assert set(eligible[spaced]) <= {1, 2}
    assert unknown not in eligible and garbage not in eligible
    segs = {s for (s,) in _sql(tiny_warehouse, f"select distinct c.segment from candidate_pool p join customers c "
                                              f"using (customer_id) where offer_id = {segments}", True)}
    assert segs and segs <= {"premium", "family"}
    assert _check_outcomes(tiny_warehouse)["candidate_pool_has_only_eligible_pairs"].passed


def test_scope_rules(tiny_warehouse):
    con = duckdb.connect()
    cases = [("NULL", "3", True), ("''", "3", True), ("' 3 , 17 '", "17", True), ("'3,17'", "4", False),
             ("'999'", "3", False), ("'x,,3'", "3", True), ("'a;b'", "3", False)]
    for scope, store, expected in cases:
        assert con.sql(f"select {store_in_scope(scope, store)}").fetchall()[0][0] is expected, scope
    assert con.sql(f"select {segment_in_scope(chr(39) + ' FAMILY, budget' + chr(39), chr(39) + 'family' + chr(39))}"
                   ).fetchall()[0][0] is True
    assert con.sql(f"select {segment_in_scope(chr(39) + 'premium' + chr(39), chr(39) + 'family' + chr(39))}"
                   ).fetchall()[0][0] is False


def test_offers_for_products_nobody_bought_are_still_candidates(tiny_warehouse):
    _sql(tiny_warehouse, """insert into products select 999999, 'Nobody Buys This', category, subcategory, brand,
                            base_price * 10, 0.64, shelf_life_days, day from products limit 1""")
    _sql(tiny_warehouse, "insert into offers values (888888, 999999, 'percentage', 30, date '2025-09-20', "
                         "date '2025-10-10', null, null, null, date '2025-09-13')")
    run_day(RUN_DAY)
    rows = _sql(tiny_warehouse, "select count(*), count(distinct strategy) from candidate_pool "
                                "where offer_id = 888888", True)[0]
    assert rows[0] > 0
    features = _sql(tiny_warehouse, """select bool_or(bought_product_before), count(*) from interaction_features
                                      where offer_id = 888888""", True)[0]
    assert features == (False, rows[0])
    offer = _sql(tiny_warehouse, "select impressions_before, historical_redemption_rate from offer_features "
                                 "where offer_id = 888888", True)[0]
    assert offer[0] == 0 and 0 < offer[1] < 1  # the global rate, not 0


def test_a_day_without_active_offers_gives_an_empty_pool_and_a_warning(tiny_warehouse):
    _sql(tiny_warehouse, "update offers set end_date = date '2025-09-25' where end_date >= date '2025-09-26'")
    result = run_day(RUN_DAY)
    meta = pool_metadata(result)
    assert meta["pairs"] == 0 and "empty" in meta["warning"]
    assert all(c.passed for c in result.get_asset_check_evaluations())
    assert _sql(tiny_warehouse, "select count(*) from interaction_features where day = date '2025-09-26'",
                True)[0][0] == 0


def test_limits_are_validated_with_one_line_naming_the_setting(monkeypatch):
    monkeypatch.setenv("METRO_CANDIDATES_CATEGORY", "0")
    with pytest.raises(SettingError, match="METRO_CANDIDATES_CATEGORY=0"):
        load_settings()
    monkeypatch.setenv("METRO_CANDIDATES_CATEGORY", "many")
    with pytest.raises(SettingError, match="METRO_CANDIDATES_CATEGORY='many' is not a whole number"):
        load_settings()
