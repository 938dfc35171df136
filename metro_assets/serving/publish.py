"""Publishing the serving snapshot from the warehouse, with no Dagster inside.

The snapshot holds the newest ``run_dates`` (``METRO_SERVING_DAYS``) run
dates of ``recommendations`` joined with the offer and product fields the API
returns (``sql/serving_snapshot.sql``). It is the whole file each time, not a
day's slice: whichever run publishes last serves the newest days, so a
publish that failed after the recommendations were committed is made good by
the next one.

Examples
--------
>>> import duckdb, tempfile
>>> from pathlib import Path
>>> from metro_assets.warehouse import ensure_schema
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> publish_snapshot(con, Path(tempfile.mkdtemp()) / "serving.parquet", run_dates=7).rows  # nothing yet
0
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from metro_assets.serving.snapshot import write_committed_marker, write_snapshot
from metro_assets.settings import check_writable
from metro_assets.warehouse import read_sql

#: The tables the snapshot query reads.
SNAPSHOT_INPUTS = ("recommendations", "offers", "products")


@dataclass(frozen=True)
class Publication:
    """What one publish wrote."""

    path: Path
    rows: int
    bytes: int
    run_dates: list[date]                 # published, oldest first
    model_versions: dict[date, str]       # the model that scored each published run date

    @property
    def newest(self) -> date | None:
        """The newest run date served, or None for an empty snapshot."""
        return self.run_dates[-1] if self.run_dates else None


def mark_committed(con: duckdb.DuckDBPyConnection, path: Path) -> date | None:
    """Write the committed marker next to the snapshot: the newest run date in ``recommendations``.

    Called by ``recommendations`` right after its transaction commits, before
    ``serving_snapshot`` publishes: until a snapshot with that run date is
    published the API's ``/health`` says ``degraded`` (docs/API.md). Returns
    the run date marked, or None when there are no recommendations yet.

    Raises
    ------
    OSError
        The marker cannot be written (the caller logs it: the publish will fail naming the setting).
    """
    newest = con.sql("SELECT max(run_date) FROM recommendations").fetchall()[0][0]
    if newest is not None:
        write_committed_marker(path, newest)
    return newest


def snapshot_frame(con: duckdb.DuckDBPyConnection, run_dates: int) -> pl.DataFrame:
    """The newest ``run_dates`` run dates of recommendations, as the API serves them."""
    return con.sql(read_sql("metro_assets.serving", "serving_snapshot"), params={"run_dates": run_dates}).pl()


def publish_snapshot(con: duckdb.DuckDBPyConnection, path: Path, run_dates: int) -> Publication:
    """Write the snapshot of the newest ``run_dates`` run dates to ``path`` atomically.

    Raises
    ------
    SettingError
        ``path`` (``METRO_SERVING``) cannot be written; nothing is published.
    DataError
        The rows break the snapshot contract; the previous file is left as it was.
    """
    check_writable(path, "METRO_SERVING")
    frame = snapshot_frame(con, run_dates)
    written = write_snapshot(frame, path)
    versions = frame.group_by("run_date").agg(pl.col("model_version").first()).sort("run_date")
    return Publication(
        path=written,
        rows=frame.height,
        bytes=written.stat().st_size,
        run_dates=versions["run_date"].to_list(),
        model_versions=dict(zip(versions["run_date"].to_list(), versions["model_version"].to_list())),
    )
