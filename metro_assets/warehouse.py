"""Reading and writing the DuckDB warehouse, with no Dagster inside.

Partitions are replaced, never appended: each write is one transaction that
deletes the window's rows and inserts the new ones, so a re-run cannot
duplicate rows and a failed run leaves the previous data intact.

Examples
--------
>>> import duckdb, polars as pl
>>> from datetime import date
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> rows = pl.DataFrame({"product_id": [1], "name": ["Milk 1L"], "category": ["dairy"],
...                      "base_price": [1.2], "day": [date(2025, 8, 15)]})
>>> replace_partitions(con, {"products": rows}, date(2025, 8, 15), date(2025, 8, 16))
{'products': 1}
>>> replace_partitions(con, {"products": rows}, date(2025, 8, 15), date(2025, 8, 16))
{'products': 1}
>>> con.sql("select count(*) from products").fetchall()[0][0]
1
"""

from __future__ import annotations

import functools
import importlib
import re
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple

import duckdb
import polars as pl

from metro_assets.errors import SettingError, WarehouseLockedError
from metro_assets.settings import check_writable, load_duckdb_settings

_PACKAGE = Path(__file__).parent


def schema_sql() -> str:
    """The text of ``schema.sql``, the one definition of every table."""
    return (_PACKAGE / "schema.sql").read_text()


@functools.cache
def _declared_columns(schema: str) -> dict[str, list[tuple[str, str]]]:
    from metro_assets.docs_data_model import catalog  # DuckDB's own reading of schema.sql

    return {table: [(name, dtype) for name, dtype, _, _ in columns] for table, columns in catalog(schema).items()}


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create any missing table, and add any column a newer schema.sql declares (idempotent).

    A warehouse written by an older version gains the new columns, empty
    (inserts go by name, so the order does not matter), instead of failing on
    its next write; re-materialize a partition to fill them.
    """
    schema = schema_sql()
    con.execute(schema)
    present: dict[str, set[str]] = {}
    for schema_name, table, column in con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database()").fetchall():
        present.setdefault(table if schema_name == "main" else f"{schema_name}.{table}", set()).add(column)
    for table, columns in _declared_columns(schema).items():
        for name, dtype in columns:
            if name not in present.get(table, {name}):
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {dtype}')


def read_sql(package: str, name: str) -> str:
    """The SQL file ``sql/<name>.sql`` next to a stage's assets."""
    folder = Path(importlib.import_module(package).__file__).parent
    return (folder / "sql" / f"{name}.sql").read_text()


CATALOG = "warehouse"  # the name a warehouse file whose stem is a schema name is attached under


def _schemas() -> set[str]:
    """The schemas ``schema.sql`` creates besides ``main`` (today: ``sim``)."""
    return set(re.findall(r"CREATE SCHEMA IF NOT EXISTS (\w+)", schema_sql(), flags=re.IGNORECASE))


def _open(database: str | Path, read_only: bool, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Connect to the warehouse file, whatever it is called.

    ``duckdb.connect(path)`` names the catalog after the file's stem, so a file
    called ``sim.duckdb`` clashes with the ``sim`` schema ("Ambiguous reference
    to catalog or schema sim"; ``main``, ``system`` and ``temp`` DuckDB renames
    itself). Such a file is attached to an in-memory database under the fixed
    name ``warehouse`` instead (same file lock; one open connection per process
    to it at a time, as ATTACH allows). Every other name connects directly, so
    connections within one process share the database as DuckDB's cache does.

    Raises
    ------
    SettingError
        The file exists but is not a DuckDB database (or one this DuckDB cannot read): one line, not retried.
    """
    try:
        if Path(database).stem.lower() not in _schemas():
            return _bounded(duckdb.connect(str(database), read_only=read_only, config=config or {}))
        con = _bounded(duckdb.connect(":memory:", config=config or {}))
        literal = "'" + str(database).replace("'", "''") + "'"
        try:
            con.execute(f"ATTACH {literal} AS {CATALOG}{' (READ_ONLY)' if read_only else ''}")
            con.execute(f"USE {CATALOG}")
        except BaseException:
            con.close()
            raise
        return con
    except duckdb.Error as exc:
        text = str(exc)
        if "not a valid DuckDB database file" in text or "serializ" in text.lower():
            reason = text.strip().splitlines()[0][:200]
            raise SettingError(f"METRO_WAREHOUSE={database} is not a DuckDB warehouse file ({reason}): "
                               "point METRO_WAREHOUSE at a warehouse or at a new file") from None
        raise


def _bounded(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``con`` with METRO_DUCKDB_MEMORY_LIMIT (and METRO_DUCKDB_TEMP_DIRECTORY) applied.

    A ``SET``, not a connect option: options must match between connections of
    one process to one file, a ``SET`` is shared by them. Past the limit DuckDB
    spills joins, sorts and aggregates to its temp directory instead of growing
    (what keeps the large scale under 16 GiB, docs/SCALING.md).
    """
    limits = load_duckdb_settings()
    con.execute(f"SET memory_limit = '{limits.memory_limit}'")
    if limits.temp_directory:
        con.execute("SET temp_directory = '" + limits.temp_directory.replace("'", "''") + "'")
    return con


def open_warehouse(database: str, lock_timeout: float, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Connect read-write, waiting up to ``lock_timeout`` seconds while another process holds the file.

    DuckDB allows one writing process per file. Only a lock conflict is waited
    for; any other error is raised at once.

    Raises
    ------
    WarehouseLockedError
        Still locked after ``lock_timeout`` seconds; names the file and the process holding it.
    """
    deadline = time.monotonic() + lock_timeout
    pause = 0.1
    while True:
        try:
            return _open(database, read_only=False, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                held = re.search(r"Conflicting lock is held in (.*?)(?:\. See also|$)", str(exc))
                holder = held.group(1) if held else "another process"
                raise WarehouseLockedError(
                    f"METRO_WAREHOUSE={database} is locked by {holder}; still locked after {lock_timeout:g} s "
                    "(METRO_WAREHOUSE_LOCK_TIMEOUT). Stop that process, then re-execute this run from failure.",
                    database, holder, lock_timeout,
                ) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)


@contextmanager
def connect(database: str | Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse outside Dagster (tests, demo, benchmarks, export)."""
    path = Path(database)
    if not read_only:
        check_writable(path, "METRO_WAREHOUSE")
    elif not path.exists():
        raise SettingError(f"METRO_WAREHOUSE={path} does not exist: materialize the simulation first")
    con = _open(path, read_only=read_only)
    try:
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()


class DeltaWriters(NamedTuple):
    """The Delta backend's three writes, as ``replace_partitions``, ``replace_partitions_sql`` and
    ``replace_rows`` call them on a Delta-backed connection (see ``storage/delta.py``)."""

    frames: Callable[..., dict[str, int]]
    partitions: Callable[..., dict[str, int]]
    where: Callable[..., int]


# Set by metro_assets.storage.delta when it is imported, which it is before it can open a Delta-backed
# connection: this floor names the hook and the backend above plugs into it (no import from here up).
_delta_writers: DeltaWriters | None = None


def register_delta_writers(writers: DeltaWriters) -> None:
    """Called once by :mod:`metro_assets.storage.delta` with its writes."""
    global _delta_writers
    _delta_writers = writers


def _delta_store(con: duckdb.DuckDBPyConnection) -> str | None:
    """The Delta store's URI when ``con`` is a Delta-backed connection (``METRO_STORAGE=delta:...``), else None."""
    return con.execute("SELECT getvariable('metro_store')").fetchall()[0][0]


def replace_partitions(
    con: duckdb.DuckDBPyConnection,
    tables: Mapping[str, pl.DataFrame],
    start: date,
    end: date,
    column: str = "day",
) -> dict[str, int]:
    """Replace the rows with ``start <= column < end`` of each table, atomically.

    All tables are written in one transaction: either every table holds the
    new window or none changed (on a Delta-backed connection: each table is
    one atomic overwrite, in the order given; see ``storage/delta.py``).
    Columns are matched by name, so a frame may omit columns that have
    defaults in ``schema.sql``.

    Returns
    -------
    dict
        Rows written per table.
    """
    delta = _delta_store(con)
    if delta is not None:  # one atomic overwrite per table (metro_assets/storage/delta.py)
        return _delta_writers.frames(con, delta, dict(tables), start, end, column)
    return replace_partitions_in_pieces(con, [tables], list(tables), start, end, column)  # one piece


def replace_partitions_in_pieces(
    con: duckdb.DuckDBPyConnection,
    pieces: Iterable[Mapping[str, pl.DataFrame]],
    tables: Iterable[str],
    start: date,
    end: date,
    column: str = "day",
) -> dict[str, int]:
    """Like :func:`replace_partitions`, for rows that come in pieces (e.g. a week of a simulation at a time).

    One transaction: the window of every table in ``tables`` is deleted, then
    each piece's frames are inserted as they come, so only one piece is held
    in memory and a failure part-way leaves the previous data intact. (On a
    Delta-backed connection the pieces of a table are gathered and written
    as one atomic overwrite per table, as :func:`replace_partitions` does.)

    Returns
    -------
    dict
        Rows written per table.
    """
    if _delta_store(con) is not None:  # one atomic overwrite per table: the pieces of a table go together
        collected: dict[str, list[pl.DataFrame]] = {table: [] for table in tables}
        for piece in pieces:
            for table, frame in piece.items():
                collected.setdefault(table, []).append(frame)
        frames = {t: pl.concat(f, how="diagonal_relaxed") if f else pl.DataFrame() for t, f in collected.items()}
        return replace_partitions(con, frames, start, end, column)
    written = {table: 0 for table in tables}
    con.execute("BEGIN TRANSACTION")
    try:
        for table in written:
            con.execute(f"DELETE FROM {table} WHERE {column} >= ? AND {column} < ?", [start, end])
        for piece in pieces:
            for table, frame in piece.items():
                if frame.height:
                    con.register("incoming_rows", frame.to_arrow())
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows")
                    con.unregister("incoming_rows")
                written[table] += frame.height
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return written


def replace_partitions_sql(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    params: list,
    start: date,
    end: date,
    column: str = "day",
) -> int:
    """Like :func:`replace_partitions` for one table filled by a SQL ``SELECT``."""
    delta = _delta_store(con)
    if delta is not None:
        return _delta_writers.partitions(con, delta, {table: (select_sql, params)}, start, end, column)[table]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {table} WHERE {column} >= ? AND {column} < ?", [start, end])
        con.execute(f"INSERT INTO {table} BY NAME {select_sql}", params)
        count = con.execute(
            f"SELECT count(*) FROM {table} WHERE {column} >= ? AND {column} < ?", [start, end]
        ).fetchall()[0][0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return count


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, column: str, value: str) -> int:
    """Replace the rows with ``column = value`` (a key that is not a day, e.g. a scenario) by ``frame``, atomically."""
    delta = _delta_store(con)
    if delta is not None:
        return _delta_writers.where(con, delta, table, frame, column, value)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {table} WHERE {column} = ?", [value])
        if frame.height:
            con.register("incoming_rows", frame.to_arrow())
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows")
            con.unregister("incoming_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return frame.height
