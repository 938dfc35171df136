"""Impossible values are refused before anything is written: the import runs the blocking checks' own rules."""

import shutil
from datetime import date, datetime

import polars as pl
import pytest

from metro_assets.importing.contract import TABLES
from metro_assets.importing.loading import load_import
from metro_assets.importing.report import ImportDataError
from metro_assets.simulation.checks import RAW_CHECKS
from metro_assets.simulation.rules import RAW_RULES
from metro_assets.simulation.world import TRUTH_TABLES
from metro_assets_tests.importing.conftest import failure_message, materialize_raw, read_tables, rewrite

FIRST, END = date(2025, 8, 15), date(2025, 10, 24)  # the tiny export's partitions


def _error(folder, **kwargs) -> ImportDataError:
    with pytest.raises(ImportDataError) as err:
        load_import(folder, FIRST, END, **kwargs)
    assert "\n" not in str(err.value)
    return err.value


def _refused_and_unchanged(tiny_world_file, folder, import_env) -> str:
    """Materialize the import over a warehouse holding data: the run fails and no table changed."""
    settings = import_env(folder)
    shutil.copy(tiny_world_file, settings.warehouse)
    before = read_tables(settings.warehouse, (*TABLES, *TRUTH_TABLES))
    result = materialize_raw(settings, "2025-08-15", "2025-10-23")
    assert not result.success
    after = read_tables(settings.warehouse, (*TABLES, *TRUTH_TABLES))
    assert all(after[t].equals(before[t]) for t in before)
    return failure_message(result)


def test_the_checks_and_the_import_share_one_rule_source():
    assert [(c.name, c.asset, c.sql) for c in RAW_CHECKS] == [(r.name, r.table, r.sql) for r in RAW_RULES]


def test_a_negative_base_price_is_refused_naming_file_column_and_row(tiny_world_file, editable_export, import_env):
    bad = pl.read_parquet(editable_export / "products.parquet")["product_id"][3]
    rewrite(editable_export, "products",
            lambda f: f.with_columns(base_price=pl.when(pl.col("product_id") == bad).then(-50.0)
                                     .otherwise("base_price")))
    message = _refused_and_unchanged(tiny_world_file, editable_export, import_env)
    assert "products.parquet, column base_price: 1 row breaks the rule 'base_price is positive'" in message
    assert f"'product_id {bad}'" in message


def test_a_negative_discount_is_refused(editable_export):
    offers = pl.read_parquet(editable_export / "offers.parquet")
    bad = offers.filter(pl.col("discount_type") == "fixed_amount")["offer_id"][0]
    rewrite(editable_export, "offers",
            lambda f: f.with_columns(discount_value=pl.when(pl.col("offer_id") == bad).then(-5.0)
                                     .otherwise("discount_value")))
    problem = _error(editable_export).problems[0]
    assert (problem.file, problem.column, problem.count) == ("offers.parquet", "discount_value", 1)
    assert problem.examples == [f"offer_id {bad}"]


def test_a_discount_above_the_line_value_is_refused_before_writing(tiny_world_file, editable_export, import_env):
    # the real export of issue 13: lines whose discount exceeds their value, order totals left to compute
    items = pl.read_parquet(editable_export / "order_items.parquet")
    line = items.row(0, named=True)
    rewrite(editable_export, "order_items",
            lambda f: f.with_columns(discount_amount=pl.when(pl.col("order_item_id") == line["order_item_id"])
                                     .then(pl.col("quantity") * pl.col("unit_price") + 100)
                                     .otherwise("discount_amount")))
    rewrite(editable_export, "orders", lambda f: f.drop("total_amount", "num_items"))
    message = _refused_and_unchanged(tiny_world_file, editable_export, import_env)
    assert "order_items.parquet, column quantity, unit_price or discount_amount" in message
    assert "order_items_have_positive_amounts" in message
    assert f"order_item_id {line['order_item_id']}" in message


def _single_line_order(folder) -> tuple[int, int]:
    """An order with exactly one line: (order_id, its order_item_id)."""
    items = pl.read_parquet(folder / "order_items.parquet")
    single = items.group_by("order_id").agg(pl.len(), pl.first("order_item_id")).filter(pl.col("len") == 1)
    redeemed = pl.read_parquet(folder / "redemptions.parquet")["order_id"]
    row = single.filter(~pl.col("order_id").is_in(redeemed.implode())).sort("order_id").row(0, named=True)
    return row["order_id"], row["order_item_id"]


def test_orders_left_without_lines_by_dropped_orphans_are_dropped_and_counted(editable_export):
    order, item = _single_line_order(editable_export)
    rewrite(editable_export, "order_items",
            lambda f: f.with_columns(product_id=pl.when(pl.col("order_item_id") == item).then(999_999)
                                     .otherwise("product_id")))
    rewrite(editable_export, "orders", lambda f: f.drop("total_amount", "num_items"))
    error = _error(editable_export)  # refused by default, and the message says how to drop them
    assert "METRO_IMPORT_DROP_ORPHANS=true" in str(error)
    result = load_import(editable_export, FIRST, END, drop_orphans=True)
    assert (result.dropped["order_items"], result.dropped["orders"]) == (1, 1)
    assert order not in result.tables["orders"]["order_id"].to_list()
    assert any("lost every line" in line and str(order) in line for line in result.dropped_detail)
    assert result.tables["orders"]["num_items"].min() >= 1


def test_a_header_only_products_file_says_it_has_no_rows(editable_export):
    header = pl.read_parquet(editable_export / "products.parquet").head(0)
    header.write_csv(editable_export / "products.csv")
    (editable_export / "products.parquet").unlink()
    error = _error(editable_export)
    assert [p.line() for p in error.problems] == [
        "products.csv: has no rows (only a header): every other table refers to its products"]


def test_an_order_dated_2035_is_refused_without_stretching_the_partitions(editable_export, import_env):
    rewrite(editable_export, "orders",
            lambda f: f.with_columns(order_timestamp=pl.when(pl.col("order_id") == pl.col("order_id").min())
                                     .then(datetime(2035, 3, 1, 9)).otherwise("order_timestamp")))
    settings = import_env(editable_export, METRO_IMPORT_LAST_DAY="2026-02-10")
    assert settings.partitions_end <= date(2026, 3, 11)  # not 2035
    result = materialize_raw(settings)
    assert not result.success
    message = failure_message(result)
    assert "orders.parquet, column order_timestamp: 1 row is dated after 2026-02-10 (METRO_IMPORT_LAST_DAY" in message
    assert "2035-03-01 09:00:00" in message
    assert not settings.warehouse.exists()


def test_the_last_import_day_defaults_to_today(editable_export, import_env):
    settings = import_env(editable_export)
    assert settings.import_last_day == datetime.now().date() or (
        abs((settings.import_last_day - datetime.now().date()).days) <= 1)  # UTC vs local midnight
