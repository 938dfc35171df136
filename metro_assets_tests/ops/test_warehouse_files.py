"""The warehouse file: any name works, a file that is not DuckDB fails once in one line, empty settings are errors."""

import time

import pytest
from dagster import DagsterEventType, DagsterInstance

from metro_assets.definitions import build_defs
from metro_assets.errors import SettingError
from metro_assets.settings import load_settings
from metro_assets.warehouse import connect
from metro_assets_tests.conftest import START


def _simulate_first_day(instance=None):
    job = build_defs(load_settings()).resolve_job_def("simulate")
    return job.execute_in_process(partition_key=START.isoformat(), instance=instance or DagsterInstance.ephemeral(),
                                  raise_on_error=False)


@pytest.mark.parametrize("name", ["sim.duckdb", "main.duckdb", "system.duckdb", "warehouse.duckdb"])
def test_any_warehouse_file_name_works(tiny_env, monkeypatch, tmp_path, name):
    # a file named after the `sim` schema made DuckDB's catalog "sim" clash with it
    monkeypatch.setenv("METRO_WAREHOUSE", str(tmp_path / name))
    result = _simulate_first_day()
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    with connect(tmp_path / name, read_only=True) as con:
        counts = con.sql("select (select count(*) from customers), (select count(*) from sim.customer_traits)"
                         ).fetchall()[0]
    assert counts[0] > 0 and counts[1] == counts[0]


def test_a_file_that_is_not_duckdb_fails_in_one_line_and_is_not_retried(tiny_env, monkeypatch, tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a warehouse\n")
    monkeypatch.setenv("METRO_WAREHOUSE", str(path))
    monkeypatch.setenv("METRO_RETRY_DELAY", "60")  # a retry would show as a minute's wait
    instance = DagsterInstance.ephemeral()
    started = time.monotonic()
    result = _simulate_first_day(instance)
    assert not result.success and time.monotonic() - started < 60
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message.strip()
    assert "\n" not in message
    assert f"METRO_WAREHOUSE={path} is not a DuckDB warehouse file" in message
    assert not [r for r in instance.get_records_for_run(result.run_id,
                                                        of_type=DagsterEventType.STEP_UP_FOR_RETRY).records]
    assert path.read_text() == "these are my notes, not a warehouse\n"


@pytest.mark.parametrize("name", ["METRO_SCALE", "METRO_WAREHOUSE", "METRO_SEED"])
def test_a_setting_set_but_empty_is_an_error(tiny_env, monkeypatch, name):
    monkeypatch.setenv(name, "  ")
    with pytest.raises(SettingError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"{name} is set but empty: give it a value, or unset it for the default")
