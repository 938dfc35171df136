"""One contract, both table stores: every test runs on DuckDB and on Delta Lake (``METRO_STORAGE``).

The ``store`` fixture is parametrised over the backends, as benfred/implicit
shares one test suite across its models: a behaviour the pipeline relies on
is written down once and must hold for each backend.
"""

from contextlib import contextmanager
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance

from metro_assets.definitions import build_defs
from metro_assets.features.daily import write_features
from metro_assets.settings import load_settings
from metro_assets.simulation.world import RAW_TABLES, TRUTH_TABLES, simulate
from metro_assets.storage import open_store
from metro_assets.warehouse import _declared_columns, ensure_schema, replace_partitions, replace_partitions_sql, \
    replace_rows, schema_sql
from metro_assets_tests.conftest import HISTORY_END, START, TINY
from metro_assets_tests.pipeline import train

BACKENDS = ["duckdb", "delta"]
D1, D2 = date(2025, 8, 15), date(2025, 8, 16)


def product_rows(day: date, ids=(1, 2), price: float = 1.0) -> pl.DataFrame:
    return pl.DataFrame({"product_id": list(ids), "name": [f"p{i}" for i in ids], "category": ["dairy"] * len(ids),
                         "base_price": [price] * len(ids), "day": [day] * len(ids)})


@pytest.fixture(params=BACKENDS)
def store(request, tiny_env, monkeypatch, tmp_path):
    """Opens connections to a fresh, empty store of one backend (call it; each call is a new connection)."""
    if request.param == "delta":
        monkeypatch.setenv("METRO_STORAGE", f"delta:{tmp_path / 'delta'}")
    settings = load_settings()

    @contextmanager
    def opened():
        with open_store(settings) as con:
            ensure_schema(con)  # as every asset does first: must be harmless on a Delta connection
            yield con

    opened.backend = request.param
    opened.settings = settings
    return opened


def count(con, table: str, where: str = "true") -> int:
    return con.sql(f"select count(*) from {table} where {where}").fetchall()[0][0]


def test_a_partition_replace_is_idempotent_and_never_duplicates(store):
    with store() as con:
        for _ in range(3):
            assert replace_partitions(con, {"products": product_rows(D1)}, D1, D2) == {"products": 2}
        replace_partitions(con, {"products": product_rows(D2, ids=(3,))}, D2, D2 + timedelta(days=1))
        # a re-run with fewer rows replaces the day, it does not add to it; the other day is untouched
        replace_partitions(con, {"products": product_rows(D1, ids=(1,), price=2.0)}, D1, D2)
        assert con.sql("select product_id, base_price, day from products order by day, product_id").fetchall() == [
            (1, 2.0, D1), (3, 1.0, D2)]
        # the same through SQL, and an empty frame empties the window
        for _ in range(2):
            assert replace_partitions_sql(
                con, "products", "SELECT 3 AS product_id, 'p3' AS name, 'dairy' AS category, 1.0 AS base_price, "
                "?::DATE AS day", [D2], D2, D2 + timedelta(days=1)) == 1
        assert count(con, "products") == 2
        replace_partitions(con, {"products": pl.DataFrame()}, D1, D2)
        assert count(con, "products", f"day = '{D1}'") == 0


def test_reads_see_writes_in_the_same_and_in_a_new_connection(store):
    with store() as con:
        replace_partitions(con, {"products": product_rows(D1), "offers": pl.DataFrame()}, D1, D2)
        assert count(con, "products") == 2  # later SQL of the same step sees the write
        if store.backend == "delta":  # the store's own tables: DuckDB's Parquet reader over the version's files
            assert "read_parquet" in con.sql("select sql from duckdb_views() where view_name = 'products'"
                                             ).fetchall()[0][0]
    with store() as con:
        assert count(con, "products") == 2 and count(con, "offers") == 0


def test_a_failing_write_leaves_every_table_as_it_was(store):
    with store() as con:
        replace_partitions(con, {"products": product_rows(D1), "customers": pl.DataFrame()}, D1, D2)
        bad = pl.DataFrame({"customer_id": [1], "day": [D1]})  # no segment: NOT NULL in schema.sql
        with pytest.raises(duckdb.ConstraintException):
            replace_partitions(con, {"products": product_rows(D1, ids=(9,)), "customers": bad}, D1, D2)
        with pytest.raises(duckdb.Error):
            replace_partitions_sql(con, "products", "SELECT 1 AS product_id, no_such_column", [], D1, D2)
    with store() as con:
        assert con.sql("select product_id from products order by 1").fetchall() == [(1,), (2,)]
        assert count(con, "customers") == 0


def test_every_table_has_the_declared_columns_and_types(store):
    declared = _declared_columns(schema_sql())
    end = START + timedelta(days=3)
    tables = simulate(TINY, 42, START, end)
    with store() as con:
        replace_partitions(con, {t: tables[t].filter(pl.col("day") < end) for t in (*RAW_TABLES, *TRUTH_TABLES)},
                           START, end)
        for table, columns in declared.items():  # written ones and never-written ones alike
            described = con.sql(f"describe {table}").fetchall()
            assert [(name, dtype) for name, dtype, *_ in described] == columns, table
        assert count(con, "sim.customer_traits") > 0


def test_point_in_time_features_do_not_change_when_later_days_land(store):
    day = START + timedelta(days=21)
    world = simulate(TINY, 42, START, day + timedelta(days=7))
    names = (*RAW_TABLES, *TRUTH_TABLES)

    def window(a, b):
        return {t: world[t].filter((pl.col("day") >= a) & (pl.col("day") < b)) for t in names}

    with store() as con:
        replace_partitions(con, window(START, day), START, day)
        write_features(con, "customer_features", day)
        before = con.sql("select * from customer_features order by customer_id").pl()
        replace_partitions(con, window(day, day + timedelta(days=7)), day, day + timedelta(days=7))  # the future
        write_features(con, "customer_features", day)
        after = con.sql("select * from customer_features order by customer_id").pl()
    assert before.height > 0 and before.equals(after)


def test_real_dagster_runs_serve_the_same_recommendations_on_both_backends(tiny_env, tmp_path, monkeypatch):
    """simulate -> (models) -> daily_pipeline as real Dagster runs, once per backend, same seed."""
    day = HISTORY_END
    results = {}
    for backend in BACKENDS:
        if backend == "delta":
            monkeypatch.setenv("METRO_STORAGE", f"delta:{tmp_path / 'delta'}")
        settings = load_settings()
        defs = build_defs(settings)
        instance = DagsterInstance.ephemeral()
        simulated = defs.get_job_def("simulate").execute_in_process(
            instance=instance, tags={"dagster/asset_partition_range_start": START.isoformat(),
                                     "dagster/asset_partition_range_end": (day - timedelta(days=1)).isoformat()})
        assert simulated.success
        with open_store(settings) as con:
            train(con, day, deep=None, uplift_learners=False)  # the retrain job's models, without PyTorch
        daily = defs.get_job_def("daily_pipeline").execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False)
        failed = {e.step_key: e.step_failure_data.error.message for e in daily.all_events if e.is_step_failure}
        assert daily.success, failed
        with open_store(settings, read_only=True) as con:
            results[backend] = con.sql(
                "select customer_id, offer_id, rank, score from recommendations where run_date = ? "
                "order by customer_id, rank", params=[day]).pl()
    assert results["duckdb"].height > 0
    assert results["delta"].equals(results["duckdb"])
    assert (tmp_path / "delta" / "recommendations" / "_delta_log").is_dir()
    assert (tmp_path / "delta" / "sim" / "customer_traits" / "_delta_log").is_dir()


def test_rows_keyed_by_something_else_than_a_day_are_replaced_too(store):
    """``replace_rows`` (the bandit's scenarios): the key's rows are replaced, the other keys kept."""
    def rows(category: str, ids) -> pl.DataFrame:
        return product_rows(D1, ids).with_columns(category=pl.lit(category))

    with store() as con:
        for _ in range(2):
            assert replace_rows(con, "products", rows("dairy", (1, 2, 3)), "category", "dairy") == 3
        replace_rows(con, "products", rows("bakery", (4, 5)), "category", "bakery")
        replace_rows(con, "products", rows("dairy", (6,)), "category", "dairy")
        assert con.sql("select category, list(product_id order by product_id) from products group by 1 "
                       "order by 1").fetchall() == [("bakery", [4, 5]), ("dairy", [6])]


def test_delta_refuses_rows_outside_the_replaced_window(store):
    """On Delta a row outside the window could never be replaced by a re-run: refused, with one line."""
    if store.backend != "delta":
        pytest.skip("DuckDB inserts what it is given (as before the table store)")
    from metro_assets.errors import DataError

    with store() as con:
        with pytest.raises(DataError, match=r"^products: 1 of 2 rows fall outside the partition being replaced"):
            replace_partitions(con, {"products": pl.concat([product_rows(D1, (1,)), product_rows(D2, (2,))])},
                               D1, D2)
        assert count(con, "products") == 0


@pytest.mark.parametrize("value, message", [
    ("sqlite", "METRO_STORAGE='sqlite' is not 'duckdb' or 'delta:<folder or URI>'"),
    ("delta:", "METRO_STORAGE='delta:' is not 'duckdb' or 'delta:<folder or URI>'"),
    ("delta:{file}", "METRO_STORAGE=delta:{file}: {file} is a file, not a folder for Delta tables"),
])
def test_a_bad_storage_setting_is_one_line_naming_it(tiny_env, monkeypatch, tmp_path, value, message):
    from metro_assets.errors import SettingError

    file = tmp_path / "a_file"
    file.write_text("")
    monkeypatch.setenv("METRO_STORAGE", value.format(file=file))
    with pytest.raises(SettingError) as caught:
        load_settings()
    assert str(caught.value) == message.format(file=file)


def test_parallel_days_need_the_delta_backend(tiny_env, monkeypatch, tmp_path):
    from metro_assets.errors import SettingError

    monkeypatch.setenv("METRO_PARALLEL_DAYS", "2")
    with pytest.raises(SettingError, match="^METRO_PARALLEL_DAYS=2 needs METRO_STORAGE=delta:<uri>: "):
        load_settings()
    monkeypatch.setenv("METRO_STORAGE", f"delta:{tmp_path}/store")
    settings = load_settings()
    assert settings.storage.parallel_days == 2 and settings.storage.delta_uri == f"{tmp_path}/store"


def _write_day(uri: str, day: date, ids: tuple) -> dict:
    """One process's partition write (a spawned worker, as the run launcher starts them)."""
    from metro_assets.storage.delta import open_delta

    con = open_delta(uri)
    try:
        return replace_partitions(con, {"products": product_rows(day, ids)}, day, day + timedelta(days=1))
    finally:
        con.close()


def test_day_partitions_written_by_concurrent_processes_all_land(tmp_path):
    """Part 2's premise: processes overwriting different days of one Delta table at once do not conflict."""
    import multiprocessing

    from metro_assets.storage.delta import open_delta

    uri = str(tmp_path / "delta")
    work = [(uri, D1 + timedelta(days=i), (10 * i, 10 * i + 1)) for i in range(4)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:  # delta-rs must not run in a forked process
        assert pool.starmap(_write_day, work) == [{"products": 2}] * 4
        pool.starmap(_write_day, work)  # and again: replaced, not duplicated
        # the workers leave on their own: terminate() sends SIGTERM, which they ignore when the launcher ignored
        # SIGINT (Dagster's in-process runs map SIGTERM to SIGINT's handler, and SIG_IGN is inherited)
        pool.close()
        pool.join()
    con = open_delta(uri)
    assert con.sql("select day, count(*) from products group by 1 order by 1").fetchall() == [
        (day, 2) for _, day, _ in work]
    con.close()


def test_copying_a_duckdb_warehouse_into_delta_keeps_every_row(tiny_world_file, tmp_path):
    from metro_assets.storage.copy import copy_tables
    from metro_assets.storage.delta import open_delta
    from metro_assets.warehouse import connect

    with connect(tiny_world_file, read_only=True) as source:
        target = open_delta(str(tmp_path / "delta"))
        copied = copy_tables(source, target)
        assert set(copied) == {*RAW_TABLES, *TRUTH_TABLES}
        for table in copied:
            query = f"select * from {table} order by all"
            assert target.sql(query).pl().equals(source.sql(query).pl()), table
        target.close()


def test_a_delta_table_written_by_an_older_schema_gains_the_new_columns(tmp_path):
    """As ensure_schema's ALTER on DuckDB: a missing column reads as NULL, and the next write adds it."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from metro_assets.storage.delta import open_delta

    uri = str(tmp_path / "delta")
    old = pa.table({"product_id": pa.array([1, 2], pa.int64()), "name": ["a", "b"], "category": ["x", "y"],
                    "day": pa.array([D1, D2])})  # no base_price yet
    write_deltalake(f"{uri}/products", old)
    con = open_delta(uri)
    assert con.sql("select product_id, base_price from products order by 1").fetchall() == [(1, None), (2, None)]
    replace_partitions(con, {"products": product_rows(D1, ids=(1,), price=3.5)}, D1, D2)
    assert open_delta(uri).sql("select product_id, base_price, day from products order by 1").fetchall() == [
        (1, 3.5, D1), (2, None, D2)]
    con.close()


def test_a_delta_table_another_tool_partitioned_is_read_through_arrow(tmp_path):
    """Not a layout this store writes (partitioned by category): read through the Arrow dataset, and replaced."""
    from deltalake import write_deltalake

    from metro_assets.storage.delta import open_delta

    uri = str(tmp_path / "delta")
    write_deltalake(f"{uri}/products", product_rows(D1, ids=(1, 2)).to_arrow(), partition_by=["category"])
    con = open_delta(uri)
    assert "read_parquet" not in con.sql("select sql from duckdb_views() where view_name = 'products'").fetchall()[0][0]
    assert con.sql("select product_id, category, day from products order by 1").fetchall() == [
        (1, "dairy", D1), (2, "dairy", D1)]
    replace_partitions(con, {"products": product_rows(D1, ids=(3,))}, D1, D2)
    assert con.sql("select product_id from products").fetchall() == [(3,)]
    con.close()


def test_a_write_that_loses_the_commit_race_is_written_again():
    """Another process committing the same table version first is retried, a lasting failure is raised."""
    from deltalake.exceptions import CommitFailedError

    from metro_assets.storage.delta import _committed

    calls = []

    def write():
        calls.append(1)
        if len(calls) < 3:
            raise CommitFailedError("version 2 already exists")
        return "written"

    assert _committed(write) == "written" and len(calls) == 3
    with pytest.raises(CommitFailedError):
        _committed(lambda: (_ for _ in ()).throw(CommitFailedError("always")), attempts=2)
