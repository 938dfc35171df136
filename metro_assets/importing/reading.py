"""Finding the import's files and reading them with DuckDB.

Each table is ``<dir>/<table>.parquet`` or ``<dir>/<table>.csv``. CSV files
are read as text (``all_varchar``) so that a bad value anywhere in the file
becomes a reported problem with examples, not a parser crash; the validator
casts every column itself.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "orders.csv").write_text("order_id,order_timestamp\\n1,2025-08-15 09:00:00\\n2,2025-08-20\\n")
>>> event_span(folder)
(datetime.date(2025, 8, 15), datetime.date(2025, 8, 20))
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

import duckdb

from metro_assets.importing.contract import EVENT_TIMESTAMPS, TABLES
from metro_assets.importing.report import Problem

FORMATS = ("parquet", "csv")


def locate(directory: Path) -> tuple[dict[str, Path], list[Problem]]:
    """The file of each table, and a problem for each table with none (or two)."""
    found, problems = {}, []
    for table in TABLES:
        files = [directory / f"{table}.{fmt}" for fmt in FORMATS if (directory / f"{table}.{fmt}").is_file()]
        if not files:
            problems.append(Problem(f"{table}.parquet", None, f"is missing (no {table}.parquet or {table}.csv "
                                                             f"in {directory})"))
        elif len(files) > 1:
            problems.append(Problem(files[0].name, None, f"and {files[1].name} both exist: keep one"))
        else:
            found[table] = files[0]
    return found, problems


def source_sql(path: Path) -> str:
    """A DuckDB table function reading one file."""
    literal = "'" + str(path).replace("'", "''") + "'"
    if path.suffix == ".csv":
        return f"read_csv({literal}, header = true, all_varchar = true)"
    return f"read_parquet({literal})"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for reading files; time-zone-aware timestamps become UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def event_span(directory: Path) -> tuple[date, date] | None:
    """First and last day of the events (orders, impressions, redemptions), or None if unreadable.

    Reads only the three timestamp columns, so it is cheap enough to run when
    the definitions load (parquet: a column scan; CSV: one parse of the file).
    Problems are left to the validator, which reports them properly.
    """
    files, _ = locate(Path(directory))
    stamps = tuple(
        (str(files[t]), files[t].stat().st_mtime_ns, files[t].stat().st_size, column)
        for t, column in EVENT_TIMESTAMPS.items() if t in files
    )
    return _span(stamps)


@functools.lru_cache(maxsize=8)
def _span(stamps: tuple) -> tuple[date, date] | None:
    # keyed on each file's mtime and size: a changed export is read again
    con = connect()
    lows, highs = [], []
    try:
        for path, _, _, column in stamps:
            try:
                rows = con.sql(f'select min(d)::date, max(d)::date from (select try_cast("{column}" as timestamp) '
                               f"as d from {source_sql(Path(path))})").fetchall()
            except duckdb.Error:
                continue
            if rows and rows[0][0] is not None:
                lows.append(rows[0][0])
                highs.append(rows[0][1])
    finally:
        con.close()
    return (min(lows), max(highs)) if lows else None
