"""The table store: where the assets' tables live, chosen by ``METRO_STORAGE`` (docs/STORAGE.md).

* ``duckdb`` (default): one DuckDB file, ``METRO_WAREHOUSE``; one writer at a time.
* ``delta:<uri>``: one Delta Lake table per asset under ``<uri>`` (:mod:`metro_assets.storage.delta`);
  day partitions can be written by several processes at once.

Either way a step gets a DuckDB connection on which the stages' SQL runs
unchanged, and writes through ``warehouse.replace_partitions`` /
``replace_partitions_sql``, which recognise a Delta-backed connection.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from metro_assets.settings import Settings


@contextmanager
def open_store(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the settings' table store, outside Dagster (tests, benchmarks, scripts).

    The DuckDB backend is :func:`metro_assets.warehouse.connect` on ``METRO_WAREHOUSE``.
    """
    if settings.storage.delta_uri is None:
        from metro_assets.warehouse import connect

        with connect(Path(settings.warehouse), read_only=read_only) as con:
            yield con
        return
    from metro_assets.storage.delta import open_delta

    con = open_delta(settings.storage.delta_uri)
    try:
        yield con
    finally:
        con.close()
