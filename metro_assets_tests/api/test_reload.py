"""Publishing a new snapshot while the API runs: picked up without a restart, never mixed, never an error."""

import os
import threading
import time
from datetime import date, timedelta

import pytest

from metro_assets.serving import write_committed_marker, write_snapshot
from metro_assets_tests.api.hammer import Hammer
from metro_assets_tests.api.snapshots import customer_ids, synthetic_snapshot


def generation(g: int, customers: int = 300):
    """Snapshot generation ``g``: model m{g}, product names tagged [g{g}], run dates shifted by g days."""
    return synthetic_snapshot(
        customers=customers, offers_per_customer=10, run_dates=2, first_run_date=date(2026, 2, 10) + timedelta(days=g),
        model_version=f"m{g}", tag=f"g{g}", seed=g,
    )


def one_snapshot(body: dict) -> str | None:
    """What is wrong with a response that mixes snapshots (None if it is all generation g)."""
    g = int(body["model_version"][1:])
    run_dates = {(date(2026, 2, 10) + timedelta(days=g + i)).isoformat() for i in range(2)}
    if body["run_date"] not in run_dates:
        return f"model m{g} with run_date {body['run_date']} of another snapshot"
    tags = {r["product_name"].rsplit(" ", 1)[-1] for r in body["recommendations"]}
    if tags != {f"[g{g}]"}:
        return f"model m{g} with rows tagged {sorted(tags)}"
    return None


def wait_for(predicate, fetch=lambda: True, timeout=10.0):
    """Poll ``fetch()`` until ``predicate(value)`` holds; returns that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def reload_error(client) -> str:
    return client.get("/health").json()["last_reload_error"] or ""


def test_a_new_snapshot_is_served_without_restart(serve_api, tmp_path):
    path = write_snapshot(generation(1), tmp_path / "serving.parquet")
    api = serve_api(path)
    with api.client() as client:
        first = client.get("/recommendations", params={"customer_id": 1}).json()
        assert (first["model_version"], first["run_date"]) == ("m1", "2026-02-12")

        write_snapshot(generation(2), path)

        second = wait_for(
            lambda body: body["model_version"] == "m2",
            lambda: client.get("/recommendations", params={"customer_id": 1}).json(),
        )
        health = client.get("/health").json()

    assert second["run_date"] == "2026-02-13" and one_snapshot(second) is None
    assert health["run_dates"] == ["2026-02-12", "2026-02-13"] and health["model_version"] == "m2"
    assert api.app.state.store.reloads == 2  # the first load and the new one: same process, same server


def test_a_snapshot_published_after_startup_ends_the_503s(serve_api, tmp_path):
    path = tmp_path / "serving.parquet"
    api = serve_api(path)
    with api.client() as client:
        assert client.get("/health").status_code == 503

        write_snapshot(generation(1), path)

        wait_for(lambda status: status == 200, lambda: client.get("/health").status_code)
        assert client.get("/recommendations", params={"customer_id": 3}).status_code == 200


def test_a_broken_new_file_keeps_the_last_good_snapshot_and_is_reported(serve_api, tmp_path):
    path = write_snapshot(generation(1), tmp_path / "serving.parquet")
    api = serve_api(path)
    junk = tmp_path / "junk"
    junk.write_bytes(b"PAR1 this is not parquet")
    os.replace(junk, path)  # someone copies a bad file over the snapshot
    with api.client() as client:
        error = wait_for(bool, lambda: reload_error(client))
        assert error.startswith("serving.parquet: not a readable Parquet file") and str(tmp_path) not in error
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["reasons"] == [f"the last reload failed: {error}"]
        assert client.get("/recommendations", params={"customer_id": 1}).json()["model_version"] == "m1"

        bad = generation(2).drop("score").with_columns(score=None)
        bad.write_parquet(path)  # right file format, broken contract (null scores)
        wait_for(lambda error: "column 'score' has" in error, lambda: reload_error(client))
        assert client.get("/health").json()["model_version"] == "m1"

        os.unlink(path)
        wait_for(lambda error: "no longer exists" in error, lambda: reload_error(client))
        assert client.get("/recommendations", params={"customer_id": 1}).status_code == 200

        write_snapshot(generation(3), path)
        health = wait_for(lambda h: h["model_version"] == "m3", lambda: client.get("/health").json())
        assert health["last_reload_error"] is None
        assert (health["status"], health["reasons"]) == ("ok", [])


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "fastapi-only"])
def test_hammering_while_snapshots_are_replaced_gives_no_error_and_no_mixed_response(serve_api, tmp_path, fast_path):
    """Clients hammer single and batch endpoints while another thread publishes 12 snapshots."""
    generations = {g: generation(g) for g in range(3)}
    path = write_snapshot(generations[0], tmp_path / "serving.parquet")
    api = serve_api(path, reload_seconds=0.05, fast_path=fast_path)
    store = api.app.state.store
    published = []

    def publisher(hammer: Hammer):
        for i in range(1, 13):
            g = i % 3
            write_snapshot(generations[g], path)
            published.append(g)
            wait_for(lambda version: version == f"m{g}", lambda: store.current.newest.model_version, timeout=20)
            served = hammer.requests
            wait_for(lambda n: n >= served + 20, lambda: hammer.requests, timeout=20)  # clients see generation g

    with Hammer(api.url, customer_ids(300).tolist(), check=one_snapshot, threads=4) as hammer:
        writer = threading.Thread(target=publisher, args=(hammer,))
        writer.start()
        writer.join(timeout=120)

    assert not writer.is_alive() and len(published) == 12
    assert hammer.errors == []
    assert store.reloads == 13
    seen = {body["model_version"] for body in hammer.bodies}
    assert seen == {"m0", "m1", "m2"}, seen
    assert hammer.requests >= 12 * 20


def test_a_fifo_at_the_snapshot_path_is_refused_without_blocking_the_watcher(serve_api, tmp_path, caplog):
    """Opening a FIFO for reading blocks until a writer comes: the watcher would never reload again."""
    path = write_snapshot(generation(1), tmp_path / "serving.parquet")
    api = serve_api(path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    os.replace(fifo, path)
    with api.client() as client:
        error = wait_for(bool, lambda: reload_error(client))
        assert error == "serving.parquet is a FIFO, not a regular file; not read"
        assert client.get("/health").json()["status"] == "degraded"
        assert client.get("/recommendations", params={"customer_id": 1}).json()["model_version"] == "m1"

        os.unlink(path)
        write_snapshot(generation(2), path)  # the watcher is alive: a real snapshot is picked up again
        health = wait_for(lambda h: h["model_version"] == "m2", lambda: client.get("/health").json())
    assert health["status"] == "ok"
    assert any("is a FIFO" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_a_fifo_is_refused_even_if_it_replaces_the_file_between_stat_and_open(tmp_path):
    from api.store import SnapshotLoadError, load_snapshot

    os.mkfifo(tmp_path / "serving.parquet")
    started = time.monotonic()
    with pytest.raises(SnapshotLoadError, match=r"^serving.parquet: not a regular file \(a FIFO\); not read$"):
        load_snapshot(tmp_path / "serving.parquet")
    assert time.monotonic() - started < 1


def test_health_shows_a_snapshot_that_lags_the_committed_recommendations(serve_api, tmp_path):
    """Finding 8: recommendations committed (marker written) but the snapshot not published: degraded."""
    path = write_snapshot(generation(1), tmp_path / "serving.parquet")  # serves through 2026-02-12
    write_committed_marker(path, date(2026, 2, 12))
    api = serve_api(path)
    with api.client() as client:
        health = client.get("/health").json()
        assert (health["status"], health["committed_run_date"]) == ("ok", "2026-02-12")

        write_committed_marker(path, date(2026, 2, 13))  # the next day commits; the publish crashes
        health = wait_for(lambda h: h["status"] == "degraded", lambda: client.get("/health").json())
        assert health["reasons"] == [
            "the snapshot lags the pipeline: recommendations are committed through 2026-02-13 but the snapshot "
            "serves through 2026-02-12 (not published yet, or publishing failed)"
        ]
        assert health == client.get("/health?via=fastapi").json() | {"age_seconds": health["age_seconds"]}

        write_snapshot(generation(2), path)  # the next run publishes: through 2026-02-13
        health = wait_for(lambda h: h["model_version"] == "m2", lambda: client.get("/health").json())
        assert (health["status"], health["reasons"]) == ("ok", [])

        (tmp_path / "serving.parquet.committed.json").write_text("garbage")
        health = wait_for(lambda h: h["status"] == "degraded", lambda: client.get("/health").json())
        assert health["reasons"] == ["cannot tell whether the snapshot is current: serving.parquet.committed.json: "
                                     "not a marker written by write_committed_marker"]
