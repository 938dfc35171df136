"""The serving snapshot file: the one file the recommendations API reads.

The ``serving_snapshot`` asset (:mod:`metro_assets.serving.publish`) hands
:func:`write_snapshot` a frame of top-N offers per customer and run date; the API (``api/``) loads it with :func:`read_snapshot_file` and
serves it from memory. The file is a Parquet file with the columns of
:data:`SNAPSHOT_COLUMNS`, sorted by ``run_date, customer_id, rank``, and two
file-level metadata keys: ``published_at`` (ISO UTC timestamp) and
``run_dates`` (comma-separated ISO dates).

It is published atomically: written to a temporary file in the same folder,
fsynced, then ``os.replace``d over the old one, so a reader opens either the
old or the new snapshot, never a half-written one. Readers must open the file
once and read everything from that handle (as :func:`read_snapshot_file` does).

This module is Dagster-free and light (Polars only): the API process imports
it and must not pull Dagster or DuckDB in (hence :class:`metro_assets.errors.DataError`
is imported only when an error is raised).

Examples
--------
>>> import tempfile, datetime as dt
>>> from pathlib import Path
>>> frame = pl.DataFrame({
...     "run_date": [dt.date(2026, 2, 11)], "customer_id": [7], "rank": [1],
...     "offer_id": [3], "product_id": [11], "product_name": ["Milk 1L"],
...     "discount_type": ["percentage"], "discount_value": [10.0], "score": [0.2],
...     "expiry_date": [dt.date(2026, 2, 18)], "strategy": ["repeat"],
...     "model_version": ["m1"], "reasons": [["you have bought Milk 1L before"]]})
>>> path = write_snapshot(frame, Path(tempfile.mkdtemp()) / "serving.parquet")
>>> read_snapshot(path).height
1
>>> read_snapshot_file(path).metadata["run_dates"]
'2026-02-11'
"""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

#: Imported offers may have no known discount (docs/IMPORT.md): served as null.
NULLABLE = frozenset({"discount_type", "discount_value"})

SNAPSHOT_COLUMNS: dict[str, pl.DataType] = {
    "run_date": pl.Date(),
    "customer_id": pl.Int64(),
    "rank": pl.Int32(),
    "offer_id": pl.Int64(),
    "product_id": pl.Int64(),
    "product_name": pl.String(),
    "discount_type": pl.String(),
    "discount_value": pl.Float64(),
    "score": pl.Float64(),
    "expiry_date": pl.Date(),
    "strategy": pl.String(),
    "model_version": pl.String(),
    "reasons": pl.List(pl.String()),
}
"""Column name -> Polars dtype of the snapshot, in file order."""

#: Columns a file written by an older publisher may lack, and what they then hold: a snapshot from
#: before reasons existed still serves (with no reasons) instead of failing the API's reload.
DEFAULTS: dict[str, pl.Expr] = {"reasons": pl.lit([], dtype=pl.List(pl.String()))}

SORT_KEY = ["run_date", "customer_id", "rank"]
OFFER_KEY = ["run_date", "customer_id", "offer_id"]


def _data_error(message: str) -> Exception:
    # Imported late: keeps the API process's imports minimal.
    from metro_assets.errors import DataError

    return DataError(message)


class SnapshotContractError(ValueError):
    """A frame or file breaks the snapshot contract; the message is one line naming the column or rows.

    Light on purpose (the API catches it); :func:`write_snapshot` and
    :func:`read_snapshot` re-raise it as :class:`metro_assets.errors.DataError`.
    """


def validate(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` as a snapshot: its contract columns in order, cast and sorted by ``run_date, customer_id, rank``.

    Checks, in order: every column of :data:`SNAPSHOT_COLUMNS` present (but those of
    :data:`DEFAULTS`, filled in) and castable (other columns are dropped), no nulls (but an
    unknown discount), no null or empty phrase in ``reasons``, ``rank >= 1``, ``score`` in
    [0, 1], ``discount_value`` finite, ``(run_date, customer_id, rank)`` and
    ``(run_date, customer_id, offer_id)`` unique, one ``model_version`` per run date.

    Raises
    ------
    SnapshotContractError
        Naming the first missing or uncastable column, or the first offending row.
    """
    absent = [c for c in DEFAULTS if c not in frame.columns]
    if absent:
        frame = frame.with_columns(DEFAULTS[c].alias(c) for c in absent)
    missing = [c for c in SNAPSHOT_COLUMNS if c not in frame.columns]
    if missing:
        raise SnapshotContractError(
            f"serving snapshot: missing column {missing[0]!r} (expected {', '.join(SNAPSHOT_COLUMNS)})"
        )
    columns = []
    for name, dtype in SNAPSHOT_COLUMNS.items():
        try:
            columns.append(frame.get_column(name).cast(dtype, strict=True))
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise SnapshotContractError(
                f"serving snapshot: column {name!r} ({frame.schema[name]}) cannot be read as {dtype}: {first}"
            ) from None
    frame = pl.DataFrame(columns)
    if not _strictly_sorted(frame):  # the ranker usually hands it sorted: skip a 1 s sort at default scale
        frame = frame.sort(SORT_KEY)
    nulls = frame.null_count().row(0, named=True)
    for column, count in nulls.items():
        if count and column not in NULLABLE:
            raise SnapshotContractError(f"serving snapshot: column {column!r} has {count} null value(s)")
    empty = frame.filter(pl.col("reasons").list.eval(pl.element().is_null() | (pl.element() == "")).list.any())
    if empty.height:
        row = empty.row(0, named=True)
        raise SnapshotContractError(f"serving snapshot: customer {row['customer_id']} on {row['run_date']} has a "
                                    f"null or empty reason for offer {row['offer_id']}")
    bad = frame.filter(
        (pl.col("rank") < 1) | ~pl.col("score").is_between(0.0, 1.0) | ~pl.col("discount_value").is_finite()
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise SnapshotContractError(
            f"serving snapshot: customer {row['customer_id']} on {row['run_date']} has rank {row['rank']}, "
            f"score {row['score']}, discount_value {row['discount_value']} "
            "(need rank >= 1, score in [0, 1], a finite discount_value)"
        )
    same_key = pl.all_horizontal(pl.col(c) == pl.col(c).shift(1) for c in SORT_KEY)  # sorted: duplicates are adjacent
    for key, duplicated in ((SORT_KEY, same_key), (OFFER_KEY, pl.struct(OFFER_KEY).is_duplicated())):
        dup = frame.filter(duplicated)
        if dup.height:
            row = dup.row(0, named=True)
            what = ", ".join(f"{k}={row[k]}" for k in key)
            raise SnapshotContractError(f"serving snapshot: duplicate rows for ({what})")
    versions = frame.group_by("run_date").agg(pl.col("model_version").n_unique().alias("n")).filter(pl.col("n") > 1)
    if versions.height:
        raise SnapshotContractError(
            f"serving snapshot: run_date {versions['run_date'][0]} mixes several model_version values"
        )
    return frame


def _strictly_sorted(frame: pl.DataFrame) -> bool:
    """True if rows are in strictly increasing ``SORT_KEY`` order (hence also unique on it)."""
    if frame.height < 2:
        return True
    later = pl.lit(False)
    for column in reversed(SORT_KEY):  # lexicographic (a, b, c) > previous row, built from the last key
        prev = pl.col(column).shift(1)
        later = (pl.col(column) > prev) | ((pl.col(column) == prev) & later)
    return bool(frame.select(later.slice(1).all()).item())


def write_snapshot(frame: pl.DataFrame, path: str | os.PathLike, published_at: datetime | None = None) -> Path:
    """Validate ``frame`` and publish it atomically as the serving snapshot at ``path``.

    Parameters
    ----------
    frame : polars.DataFrame
        Rows of top-N offers per (run_date, customer_id); at least the columns of
        :data:`SNAPSHOT_COLUMNS` (others are dropped). Any row order.
    path : path-like
        The snapshot file (``Settings.serving``); its folder is created if needed.
    published_at : datetime, optional
        Stored as metadata; defaults to now (UTC).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataError
        One line naming the missing/uncastable column or the offending rows;
        the old snapshot is left untouched.
    """
    path = Path(path)
    try:
        frame = validate(frame)
    except SnapshotContractError as exc:
        raise _data_error(str(exc)) from None
    published = (published_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    run_dates = frame.get_column("run_date").unique().sort().to_list()
    metadata = {
        "published_at": published.isoformat(timespec="microseconds"),
        "run_dates": ",".join(d.isoformat() for d in run_dates),
    }
    return replace_atomically(
        path, "wb", lambda handle: frame.write_parquet(handle, compression="zstd", statistics=True,
                                                       metadata=metadata))


def replace_atomically(path: Path, mode: str, write) -> Path:
    """Write ``path`` through ``write(handle)`` into a temp file beside it, fsync, then ``os.replace`` it.

    A reader sees the old file or the new one, never half of one; a failed
    write leaves the old file and no temp file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp file lives in the target folder so os.replace is a same-filesystem rename.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600: the API may run as another user
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse, which only weakens durability.
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class SnapshotFile:
    """One version of the snapshot file, read through a single open handle.

    ``identity`` is ``(st_dev, st_ino, st_size, st_mtime_ns)`` of exactly the
    bytes read, so a watcher comparing it with ``os.stat(path)`` knows whether
    the file has been replaced since.
    """

    frame: pl.DataFrame
    metadata: dict[str, str]
    identity: tuple[int, int, int, int]


def file_identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a snapshot is replaced (inode) or rewritten in place (size, mtime)."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def read_snapshot_file(path: str | os.PathLike) -> SnapshotFile:
    """Read the snapshot's frame, metadata and file identity from one open handle.

    No validation beyond what Parquet itself checks: see :func:`validate`.

    Raises
    ------
    OSError
        The file cannot be opened (e.g. FileNotFoundError).
    polars.exceptions.PolarsError
        The bytes are not a readable Parquet file.
    """
    with open(path, "rb") as handle:
        identity = file_identity(os.fstat(handle.fileno()))
        data = handle.read()
    frame = pl.read_parquet(io.BytesIO(data))
    metadata = pl.read_parquet_metadata(io.BytesIO(data))
    metadata = {k: v for k, v in metadata.items() if not k.startswith("ARROW:")}
    return SnapshotFile(frame=frame, metadata=metadata, identity=identity)


def read_snapshot(path: str | os.PathLike) -> pl.DataFrame:
    """The snapshot at ``path`` as a validated frame (columns and dtypes of :data:`SNAPSHOT_COLUMNS`).

    Raises
    ------
    DataError
        The file is missing, unreadable, or breaks the contract; the message names the file.
    """
    try:
        frame = read_snapshot_file(path).frame
    except OSError as exc:
        raise _data_error(f"serving snapshot {path}: cannot read ({exc.strerror or exc})") from None
    except pl.exceptions.PolarsError as exc:
        raise _data_error(f"serving snapshot {path}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    try:
        return validate(frame)
    except SnapshotContractError as exc:
        raise _data_error(f"{path}: {exc}") from None


# The "committed" marker: which run date the warehouse holds recommendations for, so the API can
# tell when the snapshot lags behind them (committed, but the publish crashed or has not happened yet).
# The API never opens the warehouse (docs/ARCHITECTURE.md), hence a tiny file next to the snapshot.


def committed_marker_path(snapshot_path: str | os.PathLike) -> Path:
    """The marker next to the snapshot: ``serving.parquet`` -> ``serving.parquet.committed.json``."""
    snapshot_path = Path(snapshot_path)
    return snapshot_path.with_name(snapshot_path.name + ".committed.json")


def write_committed_marker(snapshot_path: str | os.PathLike, newest_run_date: date) -> Path:
    """Record atomically that recommendations are committed through ``newest_run_date``.

    The ``recommendations`` asset calls it right after its warehouse transaction
    commits and before :func:`write_snapshot` publishes, with the newest
    ``run_date`` in the ``recommendations`` table. A crash in between leaves
    the marker ahead of the snapshot, and the API's ``/health`` says
    ``degraded`` until a snapshot with that run date is published.

    Returns
    -------
    Path
        The marker file (:func:`committed_marker_path`).
    """
    text = json.dumps({"newest_run_date": newest_run_date.isoformat(),
                       "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return replace_atomically(committed_marker_path(snapshot_path), "w", lambda handle: handle.write(text + "\n"))


def read_committed_marker(snapshot_path: str | os.PathLike) -> date | None:
    """The run date in the marker next to ``snapshot_path``; None when there is no marker.

    Opens without blocking and reads only a regular file (a FIFO would block a reader forever).

    Raises
    ------
    SnapshotContractError
        One line naming the marker file (by name only) and what is wrong with it.
    """
    path = committed_marker_path(snapshot_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotContractError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SnapshotContractError(f"{path.name}: not a regular file")
        data = handle.read(4096)
    try:
        return date.fromisoformat(json.loads(data)["newest_run_date"])
    except (ValueError, KeyError, TypeError):
        raise SnapshotContractError(f"{path.name}: not a marker written by write_committed_marker") from None
