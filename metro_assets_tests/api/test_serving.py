"""The serving snapshot writer/reader (metro_assets/serving.py): contract, errors, atomic publication."""

import os
import stat
import threading
import time
from datetime import date, datetime, timezone

import polars as pl
import pytest

from metro_assets.errors import DataError
from metro_assets.serving import (
    SNAPSHOT_COLUMNS,
    SnapshotContractError,
    read_snapshot,
    read_snapshot_file,
    validate,
    write_snapshot,
)
from metro_assets_tests.api.snapshots import synthetic_snapshot


@pytest.fixture
def small():
    return synthetic_snapshot(customers=50, offers_per_customer=5, run_dates=3)


def test_write_then_read_round_trips_sorted_with_metadata(tmp_path, small):
    shuffled = small.sample(fraction=1.0, shuffle=True, seed=3).with_columns(extra=pl.lit(1))
    published = datetime(2026, 2, 11, 6, 30, tzinfo=timezone.utc)

    path = write_snapshot(shuffled, tmp_path / "out" / "serving.parquet", published_at=published)

    back = read_snapshot(path)
    assert back.schema == pl.Schema(SNAPSHOT_COLUMNS)  # extra column dropped, dtypes as the contract says
    assert back.equals(small.sort("run_date", "customer_id", "rank"))
    metadata = read_snapshot_file(path).metadata
    assert metadata == {
        "published_at": "2026-02-11T06:30:00.000000+00:00",
        "run_dates": "2026-02-10,2026-02-11,2026-02-12",
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # readable by an API running as another user
    assert os.listdir(path.parent) == ["serving.parquet"]  # no temp file left behind


def test_castable_types_are_accepted(tmp_path, small):
    loose = small.with_columns(
        pl.col("run_date").cast(pl.Datetime), pl.col("rank").cast(pl.Int64), pl.col("customer_id").cast(pl.Int32)
    )
    assert read_snapshot(write_snapshot(loose, tmp_path / "s.parquet")).equals(small)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("score"), "missing column 'score'"),
        (lambda f: f.with_columns(customer_id=pl.lit("abc")), "column 'customer_id' (String) cannot be read as Int64"),
        (lambda f: f.with_columns(product_name=pl.lit(None, pl.String)), "column 'product_name' has 750 null"),
        (lambda f: f.with_columns(score=pl.col("score") + 1.5), "need rank >= 1, score in [0, 1]"),
        (lambda f: f.with_columns(rank=pl.col("rank") - 1), "has rank 0"),
        (lambda f: pl.concat([f, f.head(1)]), "duplicate rows for (run_date=2026-02-10, customer_id=1, rank=1)"),
        (
            lambda f: f.with_columns(offer_id=pl.lit(7, pl.Int64)),
            "duplicate rows for (run_date=2026-02-10, customer_id=1, offer_id=7)",
        ),
        (
            lambda f: f.with_columns(model_version=pl.when(pl.col("customer_id") == 1).then(pl.lit("b")).otherwise(
                pl.lit("a"))),
            "run_date 2026-02-10 mixes several model_version values",
        ),
    ],
)
def test_a_broken_frame_is_refused_with_one_line_and_the_old_snapshot_stays(tmp_path, small, change, message):
    path = write_snapshot(small, tmp_path / "serving.parquet")
    before = path.read_bytes()

    with pytest.raises(DataError) as caught:
        write_snapshot(change(small), path)

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["serving.parquet"]


def test_the_contract_error_is_light_and_the_writer_turns_it_into_a_data_error(small):
    with pytest.raises(SnapshotContractError, match="missing column 'strategy'"):
        validate(small.drop("strategy"))


def test_an_empty_frame_is_a_valid_snapshot(tmp_path, small):
    path = write_snapshot(small.head(0), tmp_path / "serving.parquet")
    assert read_snapshot(path).height == 0
    assert read_snapshot_file(path).metadata["run_dates"] == ""


def test_read_snapshot_names_the_file_when_it_is_missing_or_not_parquet(tmp_path):
    with pytest.raises(DataError, match=r"serving snapshot .*nope\.parquet: cannot read"):
        read_snapshot(tmp_path / "nope.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DataError, match=r"junk\.parquet: not a Parquet file"):
        read_snapshot(junk)


def test_a_failed_write_leaves_no_temp_file_and_the_old_snapshot(tmp_path, small, monkeypatch):
    path = write_snapshot(small, tmp_path / "serving.parquet")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_snapshot(small.head(10), path)

    assert os.listdir(tmp_path) == ["serving.parquet"]
    assert path.read_bytes() == before


def test_readers_only_ever_see_complete_snapshots_while_the_writer_replaces_it(tmp_path):
    """Atomic publication: every read while the file is replaced 40 times is one whole, consistent snapshot."""
    path = tmp_path / "serving.parquet"
    # Generations of different sizes: a torn read would show a row count or a tag that do not match.
    generations = {
        g: synthetic_snapshot(
            customers=200 + 150 * (g % 3), offers_per_customer=10, run_dates=1 + g % 2,
            first_run_date=date(2026, 2, 1 + g), model_version=f"m{g}", tag=f"g{g}", seed=g,
        )
        for g in range(4)
    }
    write_snapshot(generations[0], path)
    done = threading.Event()
    seen, problems = [], []

    def reader():
        while not done.is_set():
            try:
                snap = read_snapshot_file(path)
                frame = validate(snap.frame)
                g = int(frame["model_version"][0][1:])
                expected = generations[g]
                if not frame.equals(expected):
                    problems.append(f"generation {g}: rows differ")
                if snap.metadata["run_dates"] != ",".join(str(d) for d in expected["run_date"].unique().sort()):
                    problems.append(f"generation {g}: metadata from another snapshot")
                seen.append(g)
            except Exception as exc:  # a half-written file would land here
                problems.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        i, deadline = 0, time.monotonic() + 60
        while (i < 40 or len(seen) < 20) and time.monotonic() < deadline:  # a slow box still gets enough reads
            i += 1
            write_snapshot(generations[i % 4], path)
    finally:
        done.set()
        for t in threads:
            t.join()

    assert problems == []
    assert len(seen) >= 20 and len(set(seen)) >= 2


def test_offers_without_a_known_discount_are_served_as_null(tmp_path):
    import json

    from api.models import RecommendationResponse
    from api.store import load_snapshot
    from metro_assets.serving import read_snapshot

    frame = synthetic_snapshot(customers=3, run_dates=1).with_columns(
        discount_type=pl.lit(None, pl.String), discount_value=pl.lit(None, pl.Float64))
    path = write_snapshot(frame, tmp_path / "serving.parquet")
    assert read_snapshot(path)["discount_type"].null_count() == frame.height
    day = load_snapshot(path).days[frame["run_date"][0]]
    body = json.loads(day.customer_json(int(frame["customer_id"][0])))
    assert body["recommendations"][0]["discount_type"] is None
    RecommendationResponse.model_validate({**body, "customer_id": int(frame["customer_id"][0])})
