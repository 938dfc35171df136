"""Shared fixtures: a tiny simulated warehouse built once per test session."""

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from metro_assets.settings import SCALES, load_settings
from metro_assets.simulation.world import RAW_TABLES, TRUTH_TABLES, simulate
from metro_assets.warehouse import connect, replace_partitions

TINY = SCALES["tiny"]
START = date(2025, 8, 15)
HISTORY_END = START + timedelta(days=TINY.history_days)  # 2025-09-26, the tiny run date


@pytest.fixture
def tiny_env(tmp_path, monkeypatch):
    """Settings for a tiny world in a temporary warehouse; returns the Settings."""
    monkeypatch.setenv("METRO_SCALE", "tiny")
    monkeypatch.setenv("METRO_SEED", "42")
    monkeypatch.setenv("METRO_START_DATE", START.isoformat())
    monkeypatch.setenv("METRO_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("METRO_SERVING", str(tmp_path / "serving.parquet"))
    return load_settings()


def write_world(path: Path, end: date = HISTORY_END, seed: int = 42) -> Path:
    """Simulate the tiny history [START, end) straight into a warehouse file (no Dagster)."""
    tables = simulate(TINY, seed, START, end)
    with connect(path) as con:
        replace_partitions(con, {t: tables[t] for t in (*RAW_TABLES, *TRUTH_TABLES)}, START, end)
    return path


@pytest.fixture(scope="session")
def tiny_world_file(tmp_path_factory) -> Path:
    """A read-only template: the whole tiny history. Copy it before writing (see ``tiny_warehouse``)."""
    return write_world(tmp_path_factory.mktemp("world") / "template.duckdb")


@pytest.fixture(scope="session")
def scored_day_file(tiny_world_file, tmp_path_factory) -> Path:
    """A read-only template: the tiny history with every ranker kind trained for ``HISTORY_END`` and that
    day's features and candidate pool (where scoring and reasons start). Copy it before writing."""
    import duckdb

    from metro_assets_tests.pipeline import features_and_pool, train

    path = tmp_path_factory.mktemp("scored_day") / "warehouse.duckdb"
    shutil.copy(tiny_world_file, path)
    with duckdb.connect(str(path)) as con:
        train(con, HISTORY_END)
        features_and_pool(con, HISTORY_END)
    return path


@pytest.fixture
def tiny_warehouse(tiny_world_file, tiny_env) -> Path:
    """A private copy of the tiny history at ``METRO_WAREHOUSE``; returns its path."""
    shutil.copy(tiny_world_file, tiny_env.warehouse)
    return tiny_env.warehouse
