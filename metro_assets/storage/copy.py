"""Copy every table of one store into another (e.g. a DuckDB warehouse into Delta tables).

Each table is one partition write over its whole span of days, so copying
again replaces rather than duplicates. Used by ``benchmarks/concurrent_backfill.py``
to start both backends from the same data.

Usage::

    METRO_STORAGE=delta:/data/delta python -m metro_assets.storage.copy data/warehouse.duckdb
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import duckdb

from metro_assets.errors import SettingError
from metro_assets.warehouse import _declared_columns, replace_partitions, schema_sql


def partition_column(table: str) -> str:
    """The day column a table's partitions are replaced by (``run_date`` for the run-dated tables)."""
    names = [name for name, _ in _declared_columns(schema_sql())[table]]
    return "day" if "day" in names else "run_date"


def copy_tables(source: duckdb.DuckDBPyConnection, target: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Copy each declared table's rows from ``source`` to ``target``; returns the rows per table."""
    copied = {}
    for table in _declared_columns(schema_sql()):
        column = partition_column(table)
        first, last = source.sql(f"select min({column}), max({column}) from {table}").fetchall()[0]
        if first is None:
            continue
        frame = source.sql(f"select * from {table}").pl()
        copied[table] = replace_partitions(target, {table: frame}, first, last + timedelta(days=1), column)[table]
    return copied


def main(argv: list[str] | None = None) -> int:
    from metro_assets.settings import load_settings
    from metro_assets.storage import open_store
    from metro_assets.warehouse import connect

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m metro_assets.storage.copy <source warehouse.duckdb>", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        with connect(Path(args[0]), read_only=True) as source, open_store(settings) as target:
            for table, rows in copy_tables(source, target).items():
                print(f"{table}: {rows:,} rows")
    except SettingError as exc:
        print(f"metro-offers: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
