"""The in-memory snapshot (api/store.py): indexing, JSON built by hand, and when the store reloads."""

import json
import os
from datetime import date, datetime, timezone

import polars as pl
import pytest

from api.models import RecommendationResponse
from api.store import SnapshotLoadError, SnapshotStore, load_snapshot
from metro_assets.serving import write_snapshot
from metro_assets_tests.api.snapshots import synthetic_snapshot


@pytest.fixture
def frame():
    return synthetic_snapshot(customers=30, offers_per_customer=4, run_dates=2, model_version='m"1')


def test_every_customer_json_is_valid_and_equals_the_frame(tmp_path, frame):
    snapshot = load_snapshot(write_snapshot(frame, tmp_path / "s.parquet"))

    assert snapshot.rows == frame.height and snapshot.newest.run_date == date(2026, 2, 11)
    for run_date, day in snapshot.days.items():
        for customer_id in frame["customer_id"].unique():
            body = RecommendationResponse.model_validate_json(day.customer_json(customer_id))
            want = frame.filter(pl.col("run_date") == run_date, pl.col("customer_id") == customer_id).sort("rank")
            got = pl.DataFrame([r.model_dump() for r in body.recommendations])
            assert got.equals(want.select(got.columns))
            assert body.model_version == 'm"1'  # escaped in the shared head
    assert json.loads(snapshot.newest.customer_json(1, limit=2))["recommendations"][1]["rank"] == 2
    assert len(json.loads(snapshot.newest.customer_json(1, limit=99))["recommendations"]) == 4
    assert snapshot.newest.customer_json(2) is None


def test_published_at_falls_back_to_the_file_time(tmp_path, frame):
    path = tmp_path / "s.parquet"
    frame.write_parquet(path)  # a valid snapshot written without the writer: no metadata
    assert load_snapshot(path).published_at == datetime.fromtimestamp(os.stat(path).st_mtime_ns / 1e9, tz=timezone.utc)
    frame.write_parquet(path, metadata={"published_at": "last tuesday"})  # unreadable: the file time again
    assert load_snapshot(path).published_at == datetime.fromtimestamp(os.stat(path).st_mtime_ns / 1e9, tz=timezone.utc)


def test_an_empty_snapshot_is_not_served(tmp_path, frame):
    with pytest.raises(SnapshotLoadError, match="has no rows"):
        load_snapshot(write_snapshot(frame.head(0), tmp_path / "s.parquet"))


def test_the_store_reloads_only_when_the_file_changes(tmp_path, frame):
    path = write_snapshot(frame, tmp_path / "s.parquet")
    store = SnapshotStore(path, reload_seconds=60)

    assert store.refresh() is True and store.refresh() is False  # unchanged: a stat, no reload
    first = store.current
    path.write_bytes(b"garbage")
    assert store.refresh() is False and store.current is first and "not a readable Parquet file" in store.last_error
    assert store.refresh() is False  # the same bad file is not parsed again
    write_snapshot(frame.with_columns(model_version=pl.lit("m2")), path)
    assert store.refresh() is True and store.current.newest.model_version == "m2" and store.last_error is None
    assert store.reloads == 2


def test_the_watcher_thread_starts_and_stops(tmp_path, frame):
    import threading
    import time

    store = SnapshotStore(tmp_path / "s.parquet", reload_seconds=0.05)
    store.start()
    try:
        assert any(t.name == "snapshot-watcher" for t in threading.enumerate())
        write_snapshot(frame, tmp_path / "s.parquet")
        for _ in range(200):
            if store.current is not None:
                break
            time.sleep(0.05)
    finally:
        store.stop()
    assert store.current is not None and store.current.rows == frame.height
    assert not any(t.name == "snapshot-watcher" for t in threading.enumerate())  # stopped, not leaked
    seen = store.current
    write_snapshot(frame.with_columns(model_version=pl.lit("m2")), tmp_path / "s.parquet")
    time.sleep(0.3)  # six watch periods: a running watcher would have swapped the snapshot by now
    assert store.current is seen
