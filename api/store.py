"""The serving snapshot in memory, and the watcher that swaps in a new one.

A :class:`Snapshot` is immutable once built. :class:`SnapshotStore` holds the
current one in a single attribute; a background thread checks the file's
identity (device, inode, size, mtime) every ``reload_seconds`` and, when it
changed, loads and validates the new file off the event loop, then rebinds
that attribute. A request reads ``store.current`` once and uses only that
object, so it sees one snapshot from start to end even if a reload lands
mid-request; a bad new file is logged and reported by ``/health`` while the
last good snapshot keeps serving.

Memory layout (why not one JSON blob per customer): the rows of a snapshot
repeat the same few thousand offer fragments (offer, product, discount,
expiry, strategy, rank), so each distinct fragment is JSON-encoded once
(vectorised, by Polars) and a row is just (fragment index, score) in two
NumPy arrays. A response is a ``str.join`` of at most ``limit`` fragments and
scores: ~6 us. Seven default-scale run dates (3.5M rows) take ~100 MB this
way, against ~115 MB per run date (~800 MB) as precomputed per-customer JSON.

Examples
--------
>>> import tempfile, datetime as dt
>>> from pathlib import Path
>>> import polars as pl
>>> from metro_assets.serving import write_snapshot
>>> frame = pl.DataFrame({
...     "run_date": [dt.date(2026, 2, 11)] * 2, "customer_id": [7, 7], "rank": [1, 2],
...     "offer_id": [3, 4], "product_id": [11, 12], "product_name": ["Milk", "Tea"],
...     "discount_type": ["bogo", "percentage"], "discount_value": [1.0, 20.0],
...     "score": [0.25, 0.125], "expiry_date": [dt.date(2026, 2, 18)] * 2,
...     "strategy": ["repeat", "affinity"], "model_version": ["m1", "m1"],
...     "reasons": [["you have bought Milk before", "buy one, get one free"], ["20% off"]]})
>>> path = write_snapshot(frame, Path(tempfile.mkdtemp()) / "serving.parquet")
>>> snapshot = load_snapshot(path)
>>> text = snapshot.newest.customer_json(7, limit=1)
>>> print(text[:80])
{"customer_id":7,"run_date":"2026-02-11","model_version":"m1","recommendations":
>>> print(text[80:])
[{"rank":1,"offer_id":3,"product_id":11,"product_name":"Milk","discount_type":"bogo","discount_value":1.0,\
"expiry_date":"2026-02-18","strategy":"repeat","score":0.25,\
"reasons":["you have bought Milk before","buy one, get one free"]}]}
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from metro_assets.serving import (
    SnapshotContractError,
    SnapshotFile,
    committed_marker_path,
    file_identity,
    read_committed_marker,
    validate,
)

log = logging.getLogger("api.snapshot")

# Per-row JSON fields that do not depend on the score, in response order (then score and reasons).
FRAGMENT_COLUMNS = [
    "rank",
    "offer_id",
    "product_id",
    "product_name",
    "discount_type",
    "discount_value",
    "expiry_date",
    "strategy",
]


SPAN_BITS = 20  # up to ~1M offers per customer and run date
SPAN_MASK = (1 << SPAN_BITS) - 1


class SnapshotLoadError(ValueError):
    """A snapshot file that cannot be served; one line naming the file and the problem."""


@dataclass(frozen=True, eq=False)
class ServedDay:
    """One run date of a snapshot, indexed for O(1) customer lookups."""

    run_date: date
    model_version: str
    # customer_id -> first row << SPAN_BITS | row count, in ``fragment_ids``/``scores``. Plain ints keep
    # the dict untracked by the garbage collector: with tuples, every full collection walked 350k entries.
    index: dict[int, int]
    fragment_ids: np.ndarray
    scores: np.ndarray
    fragments: list[str]
    rows: int
    # reasons: row r ends with ``reason_lists[reason_ids[r]]`` ('"reasons":[...]}'), each distinct list
    # JSON-encoded once (a real day: ~20-50k distinct lists for ~500k rows; the phrases name catalogue values)
    reason_ids: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int32))
    reason_lists: list[str] = field(repr=False, default_factory=list)
    # '"run_date":"...","model_version":"...","recommendations":[' : shared by every response of the day.
    head: str = field(repr=False, default="")

    def customer_json(self, customer_id: int, limit: int | None = None) -> str | None:
        """The customer's ``RecommendationResponse`` as JSON text, or None if not served that day."""
        span = self.index.get(customer_id)
        if span is None:
            return None
        start = span >> SPAN_BITS
        count = span & SPAN_MASK
        end = start + (count if limit is None or limit > count else limit)
        fragments, lists = self.fragments, self.reason_lists
        rows = ",".join(
            [
                f"{fragments[i]}{score!r},{lists[j]}"  # repr: the shortest text that round-trips the float
                for i, score, j in zip(self.fragment_ids[start:end].tolist(), self.scores[start:end].tolist(),
                                       self.reason_ids[start:end].tolist())
            ]
        )
        return f'{{"customer_id":{customer_id},{self.head}{rows}]}}'


@dataclass(frozen=True, eq=False)
class Snapshot:
    """An immutable, fully indexed serving snapshot."""

    path: Path
    identity: tuple[int, int, int, int]
    published_at: datetime | None
    loaded_at: datetime
    days: dict[date, ServedDay]
    newest: ServedDay  # the newest run date: what a request without ``run_date`` gets
    rows: int

    @property
    def run_dates(self) -> list[date]:
        """Served run dates, oldest first."""
        return sorted(self.days)

    def describe_run_dates(self) -> str:
        """For error messages: '2026-02-10..2026-02-16 (7 dates)' or a single date."""
        dates = self.run_dates
        if len(dates) == 1:
            return dates[0].isoformat()
        return f"{dates[0].isoformat()}..{dates[-1].isoformat()} ({len(dates)} dates)"


def _published_at(metadata: dict[str, str], identity: tuple[int, int, int, int]) -> datetime | None:
    text = metadata.get("published_at")
    if text:
        try:
            stamp = datetime.fromisoformat(text)
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
        except ValueError:
            log.warning("serving snapshot: published_at=%r is not an ISO timestamp; using the file time", text)
    return datetime.fromtimestamp(identity[3] / 1e9, tz=timezone.utc)


def build_snapshot(file: SnapshotFile, path: Path) -> Snapshot:
    """Index a snapshot file for serving (vectorised: ~3 s for 3.5M rows, most of it validation).

    Raises
    ------
    SnapshotLoadError
        If the file breaks the contract of :func:`metro_assets.serving.validate`, or has no rows
        (a valid contract, but publishing nothing is a pipeline bug: the last good snapshot stays).
        Messages name the file, not its folder: ``/health`` shows them to clients.
    """
    try:
        frame = validate(file.frame)
    except SnapshotContractError as exc:
        raise SnapshotLoadError(f"{path.name}: {exc}") from None
    if frame.height == 0:
        raise SnapshotLoadError(f"{path.name}: the serving snapshot has no rows")
    # Distinct score-free row fragments, each JSON-encoded once: '{"rank":1,...,"strategy":"x","score":'
    keys = frame.select(FRAGMENT_COLUMNS).unique().with_row_index("fragment")
    fragments = (
        keys.select(
            pl.struct(FRAGMENT_COLUMNS).struct.json_encode().str.strip_suffix("}") + pl.lit(',"score":')
        )
        .to_series()
        .to_list()
    )
    rows = (
        frame.with_row_index("row")
        .join(keys, on=FRAGMENT_COLUMNS, how="left", nulls_equal=True)  # an unknown discount is null
        .sort("row")  # joins do not promise order
        .select("run_date", "customer_id", "model_version", "fragment", "score")
    )
    fragment_ids = rows.get_column("fragment").to_numpy()
    scores = rows.get_column("score").to_numpy()
    reason_ids, reason_lists = _reason_index(frame)
    spans = (
        rows.with_row_index("row")
        .group_by("run_date", "customer_id")
        .agg(pl.col("row").min().alias("start"), pl.len().alias("count"), pl.first("model_version"))
    )
    if spans.get_column("count").max() > SPAN_MASK:
        raise SnapshotLoadError(f"{path.name}: more than {SPAN_MASK} offers for one customer and run date")
    spans = spans.with_columns(
        span=(pl.col("start").cast(pl.Int64) * (1 << SPAN_BITS)) + pl.col("count").cast(pl.Int64)
    ).partition_by("run_date", as_dict=True)
    days = {}
    for (run_date,), group in spans.items():  # one iteration per run date
        version = group.get_column("model_version")[0]
        index = dict(zip(group.get_column("customer_id").to_list(), group.get_column("span").to_list()))
        head = f'"run_date":"{run_date.isoformat()}","model_version":{json.dumps(version)},"recommendations":['
        days[run_date] = ServedDay(
            run_date=run_date,
            model_version=version,
            index=index,
            fragment_ids=fragment_ids,
            scores=scores,
            fragments=fragments,
            rows=int(group.get_column("count").sum()),
            reason_ids=reason_ids,
            reason_lists=reason_lists,
            head=head,
        )
    return Snapshot(
        path=path,
        identity=file.identity,
        published_at=_published_at(file.metadata, file.identity),
        loaded_at=datetime.now(timezone.utc),
        days=days,
        newest=days[max(days)],
        rows=frame.height,
    )


def _reason_index(frame: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Each row's reasons-list id, and each distinct list as the JSON that ends a row (vectorised)."""
    lists = frame.select("reasons").unique(maintain_order=True).with_row_index("reason_list")
    ids = frame.select("reasons").join(lists, on="reasons", how="left", maintain_order="left")
    encoded = (  # '{"reasons":["30% off"]}' -> '"reasons":["30% off"]}': Polars escapes, once per list
        lists.select(pl.struct("reasons").struct.json_encode().str.strip_prefix("{")).to_series().to_list()
    )
    return ids.get_column("reason_list").cast(pl.Int32).to_numpy(), encoded


def read_regular_file(path: Path) -> SnapshotFile:
    """Like :func:`metro_assets.serving.read_snapshot_file`, but only ever reads a regular file.

    The file is opened without blocking and checked on the open handle: a FIFO
    at the path would otherwise block the reader (the watcher thread) forever,
    and a device such as /dev/zero would be read without end.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    SnapshotLoadError
        Not a regular file, or not readable as Parquet.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SnapshotLoadError(f"{path.name}: not a regular file ({_kind(info.st_mode)}); not read")
        data = handle.read()
    try:
        frame = pl.read_parquet(io.BytesIO(data))
        metadata = pl.read_parquet_metadata(io.BytesIO(data))
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SnapshotLoadError(f"{path.name}: not a readable Parquet file ({first})") from None
    metadata = {k: v for k, v in metadata.items() if not k.startswith("ARROW:")}
    return SnapshotFile(frame=frame, metadata=metadata, identity=file_identity(info))


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a plain file"


def load_snapshot(path: str | os.PathLike) -> Snapshot:
    """Read and index the snapshot at ``path``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    SnapshotLoadError
        The file is not a regular file, is unreadable or breaks the contract.
    """
    path = Path(path)
    try:
        file = read_regular_file(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SnapshotLoadError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    return build_snapshot(file, path)


class SnapshotStore:
    """The current snapshot, replaced atomically when the file changes.

    Parameters
    ----------
    path : Path
        The snapshot file (``METRO_SERVING``).
    reload_seconds : float
        How often the watcher thread ``stat``s the file (and the pipeline's
        committed marker next to it, see :func:`metro_assets.serving.write_committed_marker`).

    Attributes
    ----------
    current : Snapshot or None
        What requests are answered from.
    last_error : str or None
        Why the file on disk is not what is served (None when it is); names the file, never its folder.
    committed : date or None
        The newest run date the pipeline has committed recommendations for (from the marker); None without one.
    marker_error : str or None
        Why the marker cannot be read, if it cannot.
    """

    def __init__(self, path: Path, reload_seconds: float = 0.5):
        self.path = Path(path)
        self.reload_seconds = reload_seconds
        self.current: Snapshot | None = None
        self.last_error: str | None = None
        self.committed: date | None = None
        self.marker_error: str | None = None
        self.reloads = 0
        self._failed: tuple[int, int, int, int] | None = None  # identity of a file that failed to load
        self._marker_identity: tuple[int, int, int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one refresh at a time (watcher vs. an explicit call)

    def refresh(self) -> bool:
        """Load the file if it changed since the last (good or bad) load; True if a new snapshot was swapped in.

        Also re-reads the committed marker when it changed.
        """
        with self._lock:
            self._refresh_marker()
            return self._refresh_snapshot()

    def _fail(self, identity: tuple[int, int, int, int] | None, error: str) -> None:
        self._failed = identity
        self.last_error = error
        log.error("serving snapshot %s not loaded, %s: %s", self.path,
                  "still serving the previous one" if self.current else "nothing to serve yet", error)

    def _refresh_snapshot(self) -> bool:
        name = self.path.name
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            missing = f"{name} no longer exists; serving the snapshot loaded before"
            if self.current is not None and self.last_error != missing:
                self.last_error = missing
                self._failed = None  # the same file coming back is worth loading again
                log.warning("serving snapshot: %s (%s)", missing, self.path)
            return False
        except OSError as exc:
            self.last_error = f"{name}: cannot stat ({exc.strerror or exc})"
            return False
        identity = file_identity(info)
        current = self.current
        if (current is not None and identity == current.identity) or identity == self._failed:
            return False
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the open below forever
            self._fail(identity, f"{name} is {_kind(info.st_mode)}, not a regular file; not read")
            return False
        started = time.perf_counter()
        try:
            snapshot = load_snapshot(self.path)
        except FileNotFoundError:
            return False  # replaced away between stat and open: the next check sees the new file
        except SnapshotLoadError as exc:
            self._fail(identity, str(exc))
            return False
        self.current = snapshot  # the one atomic swap readers rely on
        self.last_error = None
        self._failed = None
        self.reloads += 1
        log.info(
            "serving snapshot loaded: %s, %d rows, run dates %s, in %.2f s",
            self.path,
            snapshot.rows,
            snapshot.describe_run_dates(),
            time.perf_counter() - started,
        )
        return True

    def _refresh_marker(self) -> None:
        marker = committed_marker_path(self.path)
        try:
            identity = file_identity(os.stat(marker))
        except OSError:
            identity = None  # no marker (a pipeline that never wrote one, or an older one): nothing to compare
        if identity == self._marker_identity:
            return
        self._marker_identity = identity
        try:
            self.committed = read_committed_marker(self.path)
            self.marker_error = None
        except SnapshotContractError as exc:
            self.committed = None
            self.marker_error = str(exc)
            log.error("committed marker %s: %s", marker, exc)

    def start(self) -> None:
        """Start the watcher thread (daemon; :meth:`stop` ends it)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="snapshot-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            try:
                self.refresh()
            except Exception:  # never let the watcher die: the API would silently go stale
                log.exception("serving snapshot watcher: unexpected error")
