"""Export the warehouse's raw tables in the import contract: ``python -m metro_assets.export <dir>``.

Writes ``<dir>/<table>.parquet`` (or ``.csv`` with ``--format csv``) for the
seven raw tables, with every contract column and no ``day`` (the import derives
it), sorted by each table's id. The warehouse is ``METRO_WAREHOUSE``, opened
read-only; ``METRO_SOURCE=parquet:<dir>`` then imports the files again.

Examples
--------
>>> import tempfile, pathlib, duckdb
>>> from metro_assets.warehouse import ensure_schema
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> con = duckdb.connect(str(folder / "w.duckdb")); ensure_schema(con); con.close()
>>> export_raw_tables(folder / "w.duckdb", folder / "out")["orders"]
0
>>> sorted(p.name for p in (folder / "out").iterdir())[:2]
['customers.parquet', 'impressions.parquet']
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import duckdb

from metro_assets.errors import SettingError
from metro_assets.importing.contract import CONTRACT, TABLES
from metro_assets.warehouse import connect


def export_raw_tables(warehouse: Path, out: Path, fmt: str = "parquet") -> dict[str, int]:
    """Write each raw table to ``out/<table>.<fmt>``; returns the rows written per table.

    Raises
    ------
    SettingError
        The warehouse does not exist, is locked or has no raw tables; ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise SettingError(f"export folder {out} is a file")
    try:
        with connect(warehouse, read_only=True) as con:
            present = {r[0] for r in con.sql("select table_name from duckdb_tables() where schema_name = 'main'")
                       .fetchall()}
            if not set(TABLES) <= present:
                raise SettingError(f"METRO_WAREHOUSE={warehouse} has no raw tables: materialize the simulation first")
            out.mkdir(parents=True, exist_ok=True)
            written = {}
            for table in TABLES:
                columns = ", ".join(c.name for c in CONTRACT[table].columns)
                target = "'" + str(out / f"{table}.{fmt}").replace("'", "''") + "'"
                options = "format parquet, compression zstd" if fmt == "parquet" else "format csv, header true"
                query = f"select {columns} from {table} order by {CONTRACT[table].key}"
                con.execute(f"copy ({query}) to {target} ({options})")
                written[table] = con.sql(f"select count(*) from {table}").fetchall()[0][0]
    except duckdb.IOException as exc:  # e.g. locked by a running materialization
        raise SettingError(f"METRO_WAREHOUSE={warehouse} cannot be read: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise SettingError(f"export folder {out}: {exc.strerror or exc}") from None
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metro_assets.export",
                                     description="Export the warehouse's raw tables in the import contract.")
    parser.add_argument("folder", type=Path, help="where to write <table>.parquet (or .csv)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    args = parser.parse_args(argv)
    # only METRO_WAREHOUSE matters here (not load_settings(): METRO_SOURCE may name this very folder)
    warehouse = Path(os.environ.get("METRO_WAREHOUSE", "").strip() or "data/warehouse.duckdb")
    try:
        written = export_raw_tables(warehouse, args.folder, args.format)
    except SettingError as exc:
        print(f"metro-offers: {exc}", file=sys.stderr)
        return 2
    print(f"exported {warehouse} to {args.folder}: " + ", ".join(f"{t} {n:,}" for t, n in written.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
