"""Simulate, export, import through the real raw assets: the same raw tables and features."""

import shutil

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from metro_assets.export import main as export_main
from metro_assets.importing.contract import TABLES
from metro_assets.settings import load_settings
from metro_assets.simulation.world import TRUTH_TABLES
from metro_assets_tests.conftest import HISTORY_END, START
from metro_assets_tests.importing.conftest import import_settings, materialize_raw, read_tables


def _assert_same_raw_tables(original, imported):
    want, got = read_tables(original), read_tables(imported)
    for table in TABLES:
        assert got[table].height > 0
        assert got[table].equals(want[table]), table


@pytest.fixture(scope="module")
def imported(tiny_export, tmp_path_factory):
    """The tiny parquet export imported by one Dagster run over every partition: (settings, result)."""
    folder = tmp_path_factory.mktemp("imported")
    with pytest.MonkeyPatch.context() as env:
        settings = import_settings(env, tiny_export, folder)
        yield settings, materialize_raw(settings)


def test_a_parquet_export_imports_to_identical_raw_tables(tiny_world_file, tiny_export, imported):
    settings, result = imported
    # the partitions follow the data: first event day .. last event day, then the usual horizon
    assert (settings.start_date, settings.history_end) == (START, HISTORY_END)
    assert result.success
    _assert_same_raw_tables(tiny_world_file, settings.warehouse)

    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values())
    assert checks["customer_segments_match_targets"].description.startswith("skipped")
    meta = {m.asset_key.path[-1]: m.metadata for m in result.asset_materializations_for_node("raw_tables")}
    assert meta["orders"]["source"].value == f"parquet:{tiny_export}"
    assert meta["orders"]["orphans_dropped"].value == 0
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    truth = [con.sql(f"select count(*) from {t}").fetchall()[0][0] for t in TRUTH_TABLES]
    con.close()
    assert truth == [0] * len(TRUTH_TABLES)  # no oracle for imported data


def test_the_imported_warehouse_gives_the_same_features(tiny_world_file, imported):
    compute = pytest.importorskip("metro_assets.features.compute")
    matrices = []
    for path in (tiny_world_file, imported[0].warehouse):
        con = duckdb.connect(str(path), read_only=True)
        # every impression of two days, with features as of the start of its day
        con.execute("create temp table requests as select customer_id, offer_id, day from impressions "
                    "where day in (date '2025-09-10', date '2025-09-20')")
        matrices.append(compute.feature_matrix(con, "requests").sort("day", "customer_id", "offer_id"))
        con.close()
    assert matrices[0].height > 100
    assert matrices[0].select(pl.col("recency_days").is_not_null().sum()).item() > 0
    # equal up to float summation order (DuckDB aggregates in parallel)
    assert_frame_equal(matrices[1], matrices[0], check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def test_reimporting_a_window_replaces_only_its_days(tiny_world_file, imported):
    settings, _ = imported
    result = materialize_raw(settings, "2025-09-01", "2025-09-03")
    assert result.success
    meta = {m.asset_key.path[-1]: m.metadata for m in result.asset_materializations_for_node("raw_tables")}
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    in_window = con.sql("select count(*) from orders where day between '2025-09-01' and '2025-09-03'").fetchall()
    con.close()
    assert meta["orders"]["rows_written"].value == in_window[0][0] > 0
    _assert_same_raw_tables(tiny_world_file, settings.warehouse)  # replaced, never duplicated


def test_a_csv_export_imports_to_identical_raw_tables(tiny_world_file, import_env, tmp_path, monkeypatch):
    folder = tmp_path / "csv"
    monkeypatch.setenv("METRO_WAREHOUSE", str(tiny_world_file))
    assert export_main([str(folder), "--format", "csv"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.csv" for t in TABLES)
    assert "day" not in (folder / "orders.csv").read_text().splitlines()[0].split(",")
    settings = import_env(folder)
    assert materialize_raw(settings).success
    _assert_same_raw_tables(tiny_world_file, settings.warehouse)


def test_the_imported_warehouse_gives_the_same_recommendations(tiny_world_file, imported, tmp_path, monkeypatch):
    definitions = pytest.importorskip("metro_assets.definitions")
    from dagster import DagsterInstance

    shutil.copy(tiny_world_file, tmp_path / "simulated.duckdb")
    recommendations = []
    for path in (tmp_path / "simulated.duckdb", imported[0].warehouse):
        monkeypatch.setenv("METRO_WAREHOUSE", str(path))
        monkeypatch.setenv("METRO_SERVING", str(path.with_suffix(".parquet")))
        job = definitions.build_defs(load_settings()).get_job_def("retrain")
        result = job.execute_in_process(partition_key=HISTORY_END.isoformat(), instance=DagsterInstance.ephemeral(),
                                        raise_on_error=False)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        con = duckdb.connect(str(path), read_only=True)
        recommendations.append(con.sql("select customer_id, offer_id, rank, score from recommendations "
                                       "where run_date = ? order by customer_id, rank", params=[HISTORY_END]).pl())
        con.close()
    assert recommendations[0].height > 0
    assert_frame_equal(recommendations[1], recommendations[0], check_exact=False, rel_tol=1e-6)
