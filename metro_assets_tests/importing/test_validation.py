"""Each contract violation, on a hand-made broken copy of the tiny export, stops the import clearly."""

import shutil
from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from metro_assets.importing.contract import TABLES
from metro_assets.importing.loading import load_import
from metro_assets.importing.report import ImportDataError
from metro_assets.simulation.world import TRUTH_TABLES
from metro_assets_tests.importing.conftest import failure_message, materialize_raw, read_tables, rewrite

FIRST, END = date(2025, 8, 15), date(2025, 10, 24)  # the tiny export's partitions


def _problems(folder, first=FIRST, **kwargs):
    with pytest.raises(ImportDataError) as err:
        load_import(folder, first, END, **kwargs)
    assert "\n" not in str(err.value)
    return err.value


def _as_csv(folder, table, change=lambda f: f):
    """Replace ``<table>.parquet`` by a CSV (all text) after ``change``."""
    frame = pl.read_parquet(folder / f"{table}.parquet").with_columns(pl.all().cast(pl.String))
    change(frame).write_csv(folder / f"{table}.csv")
    (folder / f"{table}.parquet").unlink()


def test_a_missing_file_is_reported(editable_export):
    (editable_export / "redemptions.parquet").unlink()
    error = _problems(editable_export)
    assert [p.file for p in error.problems] == ["redemptions.parquet"]
    assert "is missing" in str(error) and "redemptions.csv" in str(error)


def test_two_files_for_one_table_are_ambiguous(editable_export):
    pl.read_parquet(editable_export / "offers.parquet").write_csv(editable_export / "offers.csv")
    assert "both exist" in str(_problems(editable_export))


def test_a_missing_required_column_is_reported(editable_export):
    rewrite(editable_export, "customers", lambda f: f.drop("home_store_id"))
    rewrite(editable_export, "order_items", lambda f: f.drop("unit_price", "order_item_id"))
    error = _problems(editable_export)
    assert {(p.file, p.column) for p in error.problems} == {("customers.parquet", "home_store_id"),
                                                            ("order_items.parquet", "unit_price")}
    assert "2 problems" in str(error) and "required column" in str(error)


def test_wrong_types_are_reported_with_examples(editable_export):
    _as_csv(editable_export, "orders",
            lambda f: f.with_columns(customer_id=pl.when(pl.col("order_id").is_in(["3", "9"])).then(pl.lit("abc"))
                                     .otherwise("customer_id")))
    _as_csv(editable_export, "offers",
            lambda f: f.with_columns(start_date=pl.when(pl.col("offer_id") == "2").then(pl.lit("15/08/2025"))
                                     .otherwise("start_date")))
    rewrite(editable_export, "order_items",
            lambda f: f.with_columns(product_id=pl.when(pl.col("order_item_id") == 1).then(10001.5)
                                     .otherwise(pl.col("product_id").cast(pl.Float64))))
    problems = {(p.file, p.column): p for p in _problems(editable_export).problems}
    assert set(problems) == {("orders.csv", "customer_id"), ("offers.csv", "start_date"),
                             ("order_items.parquet", "product_id")}
    assert problems[("orders.csv", "customer_id")].count == 2
    assert problems[("orders.csv", "customer_id")].examples == ["abc"]
    assert "not a whole number" in problems[("orders.csv", "customer_id")].line()
    assert problems[("offers.csv", "start_date")].examples == ["15/08/2025"]
    assert problems[("order_items.parquet", "product_id")].examples == [10001.5]


def test_a_required_value_left_empty_is_reported(editable_export):
    rewrite(editable_export, "impressions",
            lambda f: f.with_columns(shown_timestamp=pl.when(pl.col("impression_id") == 4).then(None)
                                     .otherwise("shown_timestamp")))
    problem = _problems(editable_export).problems[0]
    assert (problem.column, problem.count, problem.examples) == ("shown_timestamp", 1, ["row 4"])


def test_duplicate_keys_are_reported(editable_export):
    rewrite(editable_export, "products", lambda f: pl.concat([f, f.head(2)]))
    problem = _problems(editable_export).problems[0]
    assert (problem.file, problem.column, problem.count) == ("products.parquet", "product_id", 2)
    assert "more than once" in problem.line()


def test_unknown_ids_are_reported(editable_export):
    rewrite(editable_export, "orders",
            lambda f: f.with_columns(customer_id=pl.when(pl.col("order_id") == 5).then(999_999)
                                     .otherwise("customer_id")))
    rewrite(editable_export, "impressions",
            lambda f: f.with_columns(offer_id=pl.when(pl.col("impression_id") <= 3).then(77_777)
                                     .otherwise("offer_id")))
    problems = {(p.file, p.column): p for p in _problems(editable_export).problems}
    assert set(problems) == {("orders.parquet", "customer_id"), ("impressions.parquet", "offer_id")}
    assert problems[("orders.parquet", "customer_id")].examples == [999_999]
    assert problems[("impressions.parquet", "offer_id")].count == 3
    assert "not in offers.parquet" in problems[("impressions.parquet", "offer_id")].line()


def test_timestamps_outside_the_partitions_are_reported(editable_export):
    rewrite(editable_export, "customers",
            lambda f: f.with_columns(join_date=pl.when(pl.col("customer_id") == 1).then(date(2031, 1, 1))
                                     .otherwise("join_date")))
    problems = {(p.file, p.column): p for p in _problems(editable_export, first=date(2025, 8, 20)).problems}
    assert set(problems) == {("customers.parquet", "join_date"), ("orders.parquet", "order_timestamp"),
                             ("impressions.parquet", "shown_timestamp"), ("redemptions.parquet", "redeemed_timestamp")}
    assert problems[("customers.parquet", "join_date")].examples == [date(2031, 1, 1)]
    orders = pl.read_parquet(editable_export / "orders.parquet")
    early = problems[("orders.parquet", "order_timestamp")]
    assert early.count == orders.filter(pl.col("order_timestamp") < datetime(2025, 8, 20)).height
    assert early.examples[0] == orders["order_timestamp"].min() and "2025-08-20..2025-10-23" in early.line()


def test_a_broken_import_fails_the_run_in_one_line_and_writes_nothing(tiny_world_file, editable_export, import_env):
    rewrite(editable_export, "orders", lambda f: f.with_columns(customer_id=pl.lit("C-17")))
    (editable_export / "products.parquet").unlink()
    broken = import_env(editable_export)
    shutil.copy(tiny_world_file, broken.warehouse)  # a warehouse with data already
    before = read_tables(broken.warehouse, (*TABLES, *TRUTH_TABLES))
    result = materialize_raw(broken, "2025-08-15", "2025-10-23")
    assert not result.success
    message = failure_message(result)
    assert "\n" not in message.strip() and "products.parquet" in message and "2 problems" in message
    after = read_tables(broken.warehouse, (*TABLES, *TRUTH_TABLES))
    assert all(after[t].height and after[t].equals(before[t]) for t in before)


def test_orphans_are_dropped_and_counted_when_allowed(tiny_world_file, editable_export, import_env):
    gone = pl.read_parquet(editable_export / "orders.parquet")["customer_id"][0]  # a customer with orders
    rewrite(editable_export, "customers", lambda f: f.filter(pl.col("customer_id") != gone))
    settings = import_env(editable_export, METRO_IMPORT_DROP_ORPHANS="true")
    assert settings.drop_orphans
    result = materialize_raw(settings)
    assert result.success
    meta = {m.asset_key.path[-1]: m.metadata for m in result.asset_materializations_for_node("raw_tables")}
    con = duckdb.connect(str(tiny_world_file), read_only=True)
    lost = con.sql("select (select count(*) from orders where customer_id = $c), (select count(*) from "
                   "order_items join orders using (order_id) where customer_id = $c)", params={"c": gone}).fetchall()[0]
    con.close()
    assert lost[0] > 0
    assert (meta["orders"]["orphans_dropped"].value, meta["order_items"]["orphans_dropped"].value) == lost
    got = read_tables(settings.warehouse, ["orders"])["orders"]
    assert got.filter(pl.col("customer_id") == gone).height == 0


def test_events_after_the_partitions_the_code_location_loaded_are_reported(editable_export, import_env):
    settings = import_env(editable_export)  # the definitions load with the export's days
    rewrite(editable_export, "orders",  # then the export grows past them
            lambda f: f.with_columns(order_timestamp=pl.when(pl.col("order_id") == 7)
                                     .then(datetime(2025, 12, 1, 9)).otherwise("order_timestamp")))
    result = materialize_raw(settings)
    assert not result.success
    message = failure_message(result)
    assert "column order_timestamp: 1 row falls outside the partitions 2025-08-15..2025-10-23" in message
    assert "2025-12-01 09:00:00" in message
    assert not settings.warehouse.exists()  # validated before the warehouse was opened
