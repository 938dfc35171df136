"""METRO_SOURCE and METRO_IMPORT_DROP_ORPHANS: validated in one line; an import's partitions follow its data."""

import subprocess
import sys
from datetime import date

import polars as pl
import pytest

from metro_assets.errors import SettingError
from metro_assets.importing.loading import load_import
from metro_assets.importing.reading import event_span
from metro_assets.importing.report import ImportDataError
from metro_assets.settings import load_settings
from metro_assets.raw.assets import build_raw_assets
from metro_assets_tests.importing.conftest import rewrite


@pytest.mark.parametrize("value, fragment", [
    ("s3://bucket/export", "is not 'simulation' or 'parquet:<folder>'"),
    ("parquet:", "is not 'simulation' or 'parquet:<folder>'"),
    ("parquet:/no/such/folder", "the folder /no/such/folder does not exist"),
])
def test_a_bad_source_is_one_clear_line(monkeypatch, value, fragment):
    monkeypatch.setenv("METRO_SOURCE", value)
    with pytest.raises(SettingError) as err:
        load_settings()
    assert fragment in str(err.value) and str(err.value).startswith("METRO_SOURCE=") and "\n" not in str(err.value)


def test_a_bad_drop_orphans_flag_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("METRO_IMPORT_DROP_ORPHANS", "maybe")
    with pytest.raises(SettingError, match="METRO_IMPORT_DROP_ORPHANS='maybe' is not true or false"):
        load_settings()


def test_the_simulation_stays_the_default(monkeypatch):
    monkeypatch.delenv("METRO_SOURCE", raising=False)
    settings = load_settings()
    assert (settings.source, settings.import_dir, settings.drop_orphans) == ("simulation", None, False)


def test_the_partitions_follow_the_data_unless_the_start_is_set(editable_export, import_env):
    for table, column in (("orders", "order_timestamp"), ("impressions", "shown_timestamp"),
                          ("redemptions", "redeemed_timestamp")):
        rewrite(editable_export, table, lambda f, c=column: f.filter(pl.col(c) >= pl.datetime(2025, 8, 20)))
    assert event_span(editable_export) == (date(2025, 8, 20), date(2025, 9, 25))
    settings = import_env(editable_export)
    assert (settings.start_date, settings.history_end) == (date(2025, 8, 20), date(2025, 9, 26))
    partitions = build_raw_assets(settings).partitions_def
    assert partitions.get_first_partition_key() == "2025-08-20"
    assert partitions.get_last_partition_key() == "2025-10-23"  # the usual 28-day horizon after the data
    assert import_env(editable_export, METRO_START_DATE="2025-08-25").start_date == date(2025, 8, 25)


def test_an_empty_folder_loads_the_settings_and_fails_the_import(tmp_path, import_env):
    settings = import_env(tmp_path)  # nothing to read the days from: the defaults stay
    assert settings.start_date == date(2025, 8, 15)
    with pytest.raises(ImportDataError) as err:
        load_import(settings.import_dir, settings.start_date, settings.partitions_end)
    assert len(err.value.problems) == 7 and "7 problems" in str(err.value)


def test_the_code_location_refuses_a_bad_source_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("METRO_SOURCE", f"parquet:{tmp_path / 'missing'}")
    run = subprocess.run([sys.executable, "-c", "import metro_assets.definitions"], capture_output=True, text=True)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [f"metro-offers: METRO_SOURCE=parquet:{tmp_path / 'missing'}: "
                                               f"the folder {tmp_path / 'missing'} does not exist"]
