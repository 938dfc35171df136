"""The raw assets through real Dagster runs: checks, idempotency, ranges, bad settings."""

import subprocess
import sys

import duckdb
import pytest
from dagster import DagsterInstance, materialize
from dagster_duckdb import DuckDBResource

from metro_assets.assets import check_results
from metro_assets.checking import evaluate_checks
from metro_assets.settings import load_settings
from metro_assets.raw.assets import build_raw_assets
from metro_assets.simulation.checks import RAW_CHECKS
from metro_assets.simulation.world import RAW_TABLES


def _materialize(settings, **kwargs):
    assets = build_raw_assets(settings)
    return materialize([assets], resources={"warehouse": DuckDBResource(database=str(settings.warehouse))},
                       instance=DagsterInstance.ephemeral(), raise_on_error=False, **kwargs)


def _counts(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in RAW_TABLES}
    finally:
        con.close()


def test_a_range_is_one_run_and_rerunning_replaces_it(tiny_env):
    tags = {"dagster/asset_partition_range_start": "2025-08-15", "dagster/asset_partition_range_end": "2025-08-28"}
    first = _materialize(tiny_env, tags=tags)
    assert first.success
    checks = first.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    before = _counts(tiny_env.warehouse)
    assert before["orders"] > 0 and before["redemptions"] > 0
    again = _materialize(tiny_env, tags=tags)
    assert again.success
    assert _counts(tiny_env.warehouse) == before
    # a single day inside the range is replaced too, never duplicated
    assert _materialize(tiny_env, partition_key="2025-08-20").success
    assert _counts(tiny_env.warehouse) == before


def test_checks_catch_planted_violations(tiny_warehouse):
    con = duckdb.connect(str(tiny_warehouse))
    con.execute("insert into orders select * from orders where day = date '2025-09-01' limit 1")
    con.execute("update order_items set quantity = 0 where order_item_id = 5")
    con.execute("insert into redemptions select redemption_id + 1000000, customer_id, 999999, order_id, "
                "redeemed_timestamp, day from redemptions limit 1")
    outcomes = {o.check.name: o for o in evaluate_checks(con, RAW_CHECKS, load_settings().start_date,
                                                          load_settings().history_end)}
    con.close()
    assert not outcomes["orders_have_unique_ids"].passed
    assert not outcomes["order_items_have_positive_amounts"].passed
    assert not outcomes["redemptions_follow_impressions"].passed
    assert outcomes["customers_have_unique_ids"].passed
    failed = [r for r in check_results(list(outcomes.values())) if not r.passed]
    assert {r.check_name for r in failed} >= {"orders_have_unique_ids"}
    assert all(r.severity.value == "ERROR" for r in failed)


def test_an_unwritable_warehouse_fails_with_one_clear_line(tiny_env, monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("METRO_WAREHOUSE", str(blocked / "warehouse.duckdb"))
    result = _materialize(load_settings(), partition_key="2025-08-15")
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    message = failure.step_failure_data.error.message
    assert "METRO_WAREHOUSE" in message and "\n" not in message.strip()


@pytest.mark.parametrize(
    "name, value, fragment",
    [("METRO_SCALE", "huge", "METRO_SCALE='huge'"), ("METRO_SEED", "abc", "METRO_SEED='abc'"),
     ("METRO_START_DATE", "2025-13-01", "METRO_START_DATE='2025-13-01'")],
)
def test_bad_settings_stop_the_cli_with_one_line(tiny_env, monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    run = subprocess.run([sys.executable, "-c", "import metro_assets.definitions"], capture_output=True, text=True)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [f"metro-offers: {run.stderr.strip().split(': ', 1)[1]}"]
    assert fragment in run.stderr


def test_a_partition_outside_the_history_is_refused(tiny_env):
    from dagster import DagsterInvalidSubsetError, DagsterUnknownPartitionError
    with pytest.raises((DagsterUnknownPartitionError, DagsterInvalidSubsetError, Exception)) as err:
        _materialize(tiny_env, partition_key="2020-01-01")
    assert "2020-01-01" in str(err.value)
