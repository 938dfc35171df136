"""The instance ``dagster.yaml`` configures: run history without an fsync per event, same files, runs work."""

import shutil

from dagster import DagsterInstance, asset, materialize

from metro_assets.runs import QuickSqliteEventLogStorage
from metro_assets_tests.ops.test_failures import ROOT


@asset
def numbers() -> None:
    """A trivial asset: what matters is what the instance records."""


def test_the_project_instance_records_events_without_fsync(tmp_path, monkeypatch):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage = getattr(storage, "_storage", storage).event_log_storage if hasattr(storage, "_storage") else storage
        assert isinstance(storage, QuickSqliteEventLogStorage)
        with storage.index_connection() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").fetchall() == [(0,)]  # OFF; SQLite's default is 2
        result = materialize([numbers], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(numbers.key).run_id == result.run_id
    # the same files as Dagster's default SQLite storage, so an existing DAGSTER_HOME keeps its history
    assert (tmp_path / "history" / "runs.db").exists() and (tmp_path / "history" / "runs" / "index.db").exists()
