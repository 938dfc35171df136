"""Fixtures for the import tests: a tiny simulated export, import settings, raw materializations."""

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance, materialize
from dagster_duckdb import DuckDBResource

from metro_assets.export import export_raw_tables
from metro_assets.importing.contract import CONTRACT, TABLES
from metro_assets.settings import load_settings
from metro_assets.raw.assets import build_raw_assets

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # errors still show


@pytest.fixture(scope="session")
def tiny_export(tiny_world_file, tmp_path_factory) -> Path:
    """The tiny simulated history exported in the import contract (read-only: copy before editing)."""
    folder = tmp_path_factory.mktemp("export")
    export_raw_tables(tiny_world_file, folder)
    return folder


@pytest.fixture
def editable_export(tiny_export, tmp_path) -> Path:
    """A private copy of the tiny export to break by hand."""
    return Path(shutil.copytree(tiny_export, tmp_path / "import"))


def import_settings(env: pytest.MonkeyPatch, source: Path, work: Path, **extra: str):
    """Point the settings at the import folder ``source``, the warehouse and snapshot in ``work``; the Settings."""
    env.setenv("METRO_SCALE", "tiny")
    env.delenv("METRO_START_DATE", raising=False)  # the partitions follow the data
    env.delenv("METRO_IMPORT_DROP_ORPHANS", raising=False)
    env.setenv("METRO_WAREHOUSE", str(work / "imported.duckdb"))
    env.setenv("METRO_SERVING", str(work / "serving.parquet"))
    env.setenv("METRO_SOURCE", f"parquet:{source}")
    for name, value in extra.items():
        env.setenv(name, value)
    return load_settings()


@pytest.fixture
def import_env(tmp_path, monkeypatch):
    """Point the settings at an import folder; returns a function(folder, **env) -> Settings."""
    return lambda folder, **env: import_settings(monkeypatch, folder, tmp_path, **env)


def materialize_raw(settings, start=None, end=None):
    """One real Dagster run of the raw assets over [start, end] (default: every partition)."""
    assets = build_raw_assets(settings)
    keys = assets.partitions_def.get_partition_keys()
    tags = {"dagster/asset_partition_range_start": start or keys[0],
            "dagster/asset_partition_range_end": end or keys[-1]}
    return materialize([assets],
                       resources={"warehouse": DuckDBResource(database=str(settings.warehouse))},
                       instance=DagsterInstance.ephemeral(), raise_on_error=False, tags=tags, run_config=QUIET)


def read_tables(path: Path, tables=TABLES) -> dict[str, pl.DataFrame]:
    """Whole tables, sorted by their id, for comparisons."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.sql(f"select * from {t}").pl().sort(CONTRACT[t].key if t in CONTRACT else pl.all())
                for t in tables}
    finally:
        con.close()


def rewrite(folder: Path, table: str, change) -> None:
    """Apply ``change`` (a frame -> frame function) to ``<folder>/<table>.parquet``."""
    path = folder / f"{table}.parquet"
    change(pl.read_parquet(path)).write_parquet(path)


def failure_message(result) -> str:
    return [e for e in result.all_events if e.is_step_failure][0].step_failure_data.error.message
