"""Which warehouse tables a step really reads: every statement it runs, through DuckDB's own planner.

A :class:`RecordingWarehouse` hands out connections that, before running
each SQL statement, ask DuckDB to plan it (``EXPLAIN (FORMAT JSON)``, :func:`tables_read`) and collect
the tables its scans touch. CTEs, subqueries and temporary tables are resolved by the planner,
not by guessing from the text.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import duckdb

from metro_assets.resources import WarehouseResource

#: The tables read by the statements run through recording connections since the last :func:`drain`.
READ: set[str] = set()

#: Statement types that cannot read a table (transactions, settings, DDL without a query).
_NO_READS = {"TRANSACTION", "SET", "VARIABLE_SET", "DROP", "PRAGMA", "CREATE", "ALTER", "LOAD", "CALL"}


class RecordingConnection:
    """A DuckDB connection that notes each statement it is asked to run."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def _note(self, query, params):
        READ.update(tables_read(self._con, query, params))  # planned before it runs: its inputs exist now

    def execute(self, query, parameters=None, *args, **kwargs):
        self._note(query, parameters)
        return self._con.execute(query, parameters, *args, **kwargs)

    def sql(self, query, *args, **kwargs):
        self._note(query, kwargs.get("params"))
        return self._con.sql(query, *args, **kwargs)

    query = sql

    def table(self, name):
        self._note(f"SELECT * FROM {name}", None)
        return self._con.table(name)


class RecordingWarehouse(WarehouseResource):
    """The warehouse resource, handing out recording connections."""

    @contextmanager
    def get_connection(self):
        with super().get_connection() as con:
            yield RecordingConnection(con)


def _params_for(statement: str, params):
    if isinstance(params, dict):
        used = {k: v for k, v in params.items() if f"${k}" in statement}
        return used or None
    return params if params and "?" in statement else None


def tables_read(con: duckdb.DuckDBPyConnection, query: str, params) -> set[str]:
    """The warehouse tables (``name`` or ``sim.name``) the statements of ``query`` scan.

    Raises when a statement that may read cannot be planned: an unexplained
    statement would hide a read edge.
    """
    found = set()
    for statement in con.extract_statements(query):
        kind = str(statement.type).rsplit(".", 1)[-1]
        text = statement.query
        if kind in _NO_READS and not re.search(r"\bAS\s*\(?\s*(SELECT|WITH|FROM)\b", text, re.I):
            continue
        plan = con.execute(f"EXPLAIN (FORMAT JSON) {text}", _params_for(text, params)).fetchall()
        for _, tree in plan:
            for name in re.findall(r'"Table":\s*"([^"]+)"', tree):
                parts = name.split(".")
                if len(parts) == 3 and parts[0] != "temp":
                    found.add(parts[2] if parts[1] == "main" else f"{parts[1]}.{parts[2]}")
    return found


def drain() -> set[str]:
    """The tables read since the last drain; empties the record."""
    found = set(READ)
    READ.clear()
    return found
