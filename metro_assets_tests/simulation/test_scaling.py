"""Issue 19 part 3: the simulation written a week at a time, the large scale, DuckDB's memory limit."""

from datetime import timedelta

import duckdb
import polars as pl
import pytest

from metro_assets.errors import SettingError
from metro_assets.settings import SCALES, load_settings
from metro_assets.simulation.world import simulate, simulate_chunks
from metro_assets.warehouse import connect, ensure_schema, replace_partitions_in_pieces
from metro_assets_tests.conftest import START, TINY

DAYS = 23  # three pieces of 7 days and a last one of 2


@pytest.fixture(scope="module")
def whole():
    return simulate(TINY, 42, START, START + timedelta(days=DAYS))


def test_the_pieces_hold_exactly_the_rows_of_one_simulation(whole):
    pieces = list(simulate_chunks(TINY, 42, START, START + timedelta(days=DAYS), chunk_days=7))
    assert len(pieces) == 1 + 4  # the dimensions, then 7 + 7 + 7 + 2 days of events
    assert [p["orders"]["day"].n_unique() for p in pieces[1:]] == [7, 7, 7, 2]
    for table, frame in whole.items():
        parts = [p[table] for p in pieces if table in p]
        assert pl.concat(parts).equals(frame), table  # ids count on across pieces: the same rows, same order
    # every piece's ids follow the previous piece's, with no gap
    ids = pl.concat([p["order_items"].select("order_item_id") for p in pieces[1:]])["order_item_id"]
    assert ids.to_list() == list(range(1, len(ids) + 1))


def test_a_failure_part_way_through_the_pieces_leaves_the_previous_rows(whole):
    end = START + timedelta(days=DAYS)
    con = duckdb.connect()
    ensure_schema(con)
    replace_partitions_in_pieces(con, [{"orders": whole["orders"]}], ["orders"], START, end)

    def pieces():
        yield {"orders": whole["orders"].head(10)}
        raise RuntimeError("the simulation died")

    with pytest.raises(RuntimeError):
        replace_partitions_in_pieces(con, pieces(), ["orders"], START, end)
    assert con.sql("select count(*) from orders").fetchall()[0][0] == whole["orders"].height
    written = replace_partitions_in_pieces(con, [{"orders": whole["orders"].head(10)},
                                                 {"orders": whole["orders"].slice(10, 5)}], ["orders"], START, end)
    assert written == {"orders": 15}
    assert con.sql("select count(*) from orders").fetchall()[0][0] == 15  # replaced, not appended


def test_the_large_scale_is_five_times_default_customers(monkeypatch):
    monkeypatch.setenv("METRO_SCALE", "large")
    large, default = load_settings().scale, SCALES["default"]
    assert large.customers == 5 * default.customers == 250_000
    assert default.products < large.products < 5 * default.products  # assortments grow slower than customers
    assert large.history_days == default.history_days


def test_the_warehouse_connection_has_the_memory_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("METRO_DUCKDB_MEMORY_LIMIT", "1GiB")
    monkeypatch.setenv("METRO_DUCKDB_TEMP_DIRECTORY", str(tmp_path / "spill"))
    with connect(tmp_path / "w.duckdb") as con:
        limit, spill = con.execute("select current_setting('memory_limit'), current_setting('temp_directory')"
                                   ).fetchall()[0]
    assert limit in ("1.0 GiB", "1024.0 MiB") and spill == str(tmp_path / "spill")


@pytest.mark.parametrize("value", ["lots", "8", "-1GB"])
def test_a_bad_memory_limit_is_one_line_naming_the_setting(monkeypatch, value):
    monkeypatch.setenv("METRO_DUCKDB_MEMORY_LIMIT", value)
    with pytest.raises(SettingError, match=r"^METRO_DUCKDB_MEMORY_LIMIT=.* is not an amount of memory"):
        load_settings()
