"""Scoring reads the day's feature tables: what they hold is what is scored, and a gap stops it."""

import pytest

from metro_assets.errors import DataError
from metro_assets.ranking.scoring import score_pool, selected_model
from metro_assets_tests.conftest import HISTORY_END
from metro_assets_tests.pipeline import writable_copy

DAY = HISTORY_END  # 2025-09-26


@pytest.fixture
def con(scored_day_file, tmp_path):
    with writable_copy(scored_day_file, tmp_path) as con:
        yield con


def _scores(con, kind="lightgbm"):
    return score_pool(con, DAY, selected_model(con, DAY, kind=kind)[1]).sort("customer_id", "offer_id")


def test_scores_follow_the_stored_feature_tables(con):
    before = _scores(con)
    pool = con.sql("select count(*) from candidate_pool where day = ?", params=[DAY]).fetchall()[0][0]
    assert before.height == pool > 0 and before["score"].is_between(0, 1).all()
    # a re-materialized (here: edited) feature partition is what the next scoring reads
    con.execute("update interaction_features set category_line_share = 1 - category_line_share, "
                "log_category_line_share = ln(1 - category_line_share) where day = ?", [DAY])
    con.execute("update customer_features set promo_log_odds = -promo_log_odds where day = ?", [DAY])
    after = _scores(con)
    assert after.select("customer_id", "offer_id").equals(before.select("customer_id", "offer_id"))
    assert (after["score"] != before["score"]).mean() > 0.5
    # other days' rows are not read: a far-off copy of the day's features changes nothing
    con.execute("insert into customer_features select * replace (day + 400 as day, 0.0 as recency_days) "
                "from customer_features where day = ?", [DAY])
    assert _scores(con).equals(after)


@pytest.mark.parametrize("table", ["customer_features", "offer_features", "interaction_features"])
def test_a_missing_feature_partition_stops_scoring_naming_table_and_day(con, table):
    con.execute(f"delete from {table} where day = ?", [DAY])
    with pytest.raises(DataError, match=rf"^{table} has no partition {DAY} .*materialize {table} for {DAY}"):
        _scores(con)


def test_a_stale_feature_partition_stops_scoring_naming_the_gap(con):
    con.execute("delete from interaction_features where day = ? and customer_id % 7 = 0", [DAY])
    with pytest.raises(DataError, match=rf"^interaction_features {DAY} lacks \d+ of the candidate pool's \d+ pairs "
                                        r"\(e\.g\. customer \d+, offer \d+\)"):
        _scores(con)


def test_a_partition_written_before_a_feature_existed_stops_scoring(con):
    # what a warehouse upgraded in place holds: the new column added, NULL in the older partitions
    con.execute("update interaction_features set offer_shown_28d = null where day = ?", [DAY])
    with pytest.raises(DataError, match=rf"^interaction_features {DAY} has no offer_shown_28d .*"
                                        rf"re-materialize interaction_features for {DAY}"):
        _scores(con)
