"""The recommendations API over a real uvicorn server: endpoints, errors, the fast path, `make serve`."""

import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.models import BatchResponse, Health, RecommendationResponse, Unavailable
from metro_assets_tests.api.conftest import CUSTOMERS, OFFERS

ROOT = Path(__file__).resolve().parents[2]
NEWEST, OLDER = date(2026, 2, 11), date(2026, 2, 10)


def expected_rows(frame: pl.DataFrame, customer_id: int, run_date: date) -> list[dict]:
    rows = frame.filter((pl.col("customer_id") == customer_id) & (pl.col("run_date") == run_date)).sort("rank")
    rows = rows.drop("run_date", "customer_id", "model_version")
    as_json = rows.with_columns(pl.col("expiry_date").cast(pl.String))
    return list(as_json.iter_rows(named=True))


def test_health_describes_the_snapshot(api):
    response = httpx.get(f"{api.url}/health")

    assert response.status_code == 200
    health = Health.model_validate_json(response.content)
    assert health.run_dates == [OLDER, NEWEST] and health.newest_run_date == NEWEST
    assert health.model_version == "ranker-test-1"
    assert health.rows == CUSTOMERS * OFFERS * 2 and health.customers == CUSTOMERS
    assert health.age_seconds is not None and 0 <= health.age_seconds < 600
    assert health.last_reload_error is None


def test_health_is_the_same_through_the_fast_path_and_fastapi(api, plain_api):
    bodies = [httpx.get(url).json() for url in (f"{api.url}/health", f"{api.url}/health?via=fastapi",
                                                 f"{plain_api.url}/health")]
    for body in bodies:
        assert body.pop("age_seconds") >= 0
    assert bodies[0] == bodies[1]  # same server: fast path and FastAPI route
    bodies[1].pop("loaded_at"), bodies[2].pop("loaded_at")
    assert bodies[1] == bodies[2]


def test_recommendations_default_to_the_newest_run_date_and_match_the_snapshot(api, snapshot_frame):
    response = httpx.get(f"{api.url}/recommendations", params={"customer_id": 3})

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = RecommendationResponse.model_validate_json(response.content)
    assert (body.customer_id, body.run_date, body.model_version) == (3, NEWEST, "ranker-test-1")
    assert response.json()["recommendations"] == expected_rows(snapshot_frame, 3, NEWEST)
    scores = [r.score for r in body.recommendations]
    assert [r.rank for r in body.recommendations] == list(range(1, OFFERS + 1))
    assert scores == sorted(scores, reverse=True)


def test_every_customer_round_trips_exactly_including_awkward_product_names(api, snapshot_frame):
    """JSON is built by hand from fragments: compare a whole run date against the frame, row by row."""
    with api.client() as client:
        got = [
            client.get("/recommendations", params={"customer_id": c, "run_date": "2026-02-10"}).json()
            for c in range(1, 400, 2)
        ]
    frame = snapshot_frame.filter(pl.col("run_date") == OLDER, pl.col("customer_id") < 400)
    names = {r["product_name"] for body in got for r in body["recommendations"]}
    assert any('"' in n for n in names) and any("\\" in n for n in names) and any("Ä" in n for n in names)
    flat = pl.DataFrame(
        [{"customer_id": b["customer_id"], **r} for b in got for r in b["recommendations"]]
    ).with_columns(pl.col("expiry_date").str.to_date())
    assert flat.sort("customer_id", "rank").equals(frame.select(flat.columns).sort("customer_id", "rank"))


def test_run_date_and_limit(api, snapshot_frame):
    response = httpx.get(f"{api.url}/recommendations", params={"customer_id": 5, "run_date": "2026-02-10", "limit": 3})

    assert response.status_code == 200
    assert response.json()["run_date"] == "2026-02-10"
    assert response.json()["recommendations"] == expected_rows(snapshot_frame, 5, OLDER)[:3]


@pytest.mark.parametrize("api_fixture", ["api", "plain_api"])
def test_unknown_customer_and_unserved_run_date_are_404_naming_them(api_fixture, request):
    url = request.getfixturevalue(api_fixture).url

    unknown = httpx.get(f"{url}/recommendations", params={"customer_id": 4})
    old = httpx.get(f"{url}/recommendations", params={"customer_id": 3, "run_date": "2025-01-01"})

    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "customer 4 has no recommendations on 2026-02-11"}
    assert old.status_code == 404
    assert old.json() == {"detail": "run_date 2025-01-01 is not served; served: 2026-02-10..2026-02-11 (2 dates)"}


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("customer_id=abc", ["query", "customer_id"]),
        ("customer_id=0", ["query", "customer_id"]),
        ("customer_id=-3", ["query", "customer_id"]),
        ("customer_id=1.5", ["query", "customer_id"]),
        (f"customer_id={2**63}", ["query", "customer_id"]),
        ("customer_id=" + "9" * 5000, ["query", "customer_id"]),
        ("", ["query", "customer_id"]),
        ("customer_id=3&run_date=2026-13-01", ["query", "run_date"]),
        ("customer_id=3&run_date=yesterday", ["query", "run_date"]),
        ("customer_id=3&limit=0", ["query", "limit"]),
        ("customer_id=3&limit=101", ["query", "limit"]),
        ("customer_id=3&limit=ten", ["query", "limit"]),
    ],
)
def test_malformed_input_is_422_naming_the_parameter(api, query, where):
    response = httpx.get(f"{api.url}/recommendations?{query}")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == where


def test_batch_get_and_post_return_found_customers_in_order_and_the_missing_ones(api):
    ids = [7, 2, 3, 7, 4000, 1]
    with api.client() as client:
        got = client.get("/recommendations/batch", params={"customer_ids": ids, "limit": 2})
        posted = client.post("/recommendations/batch", params={"limit": 2}, json=ids)
        singles = {c: client.get("/recommendations", params={"customer_id": c, "limit": 2}).json() for c in (7, 3, 1)}

    assert got.status_code == posted.status_code == 200
    assert got.content == posted.content
    batch = BatchResponse.model_validate_json(got.content)
    assert (batch.run_date, batch.model_version) == (NEWEST, "ranker-test-1")
    assert [c.customer_id for c in batch.customers] == [7, 3, 1]  # request order, duplicates once
    assert batch.missing_customer_ids == [2, 4000]
    assert got.json()["customers"] == [singles[7], singles[3], singles[1]]


def test_batch_for_an_older_run_date_and_an_unserved_one(api):
    older = httpx.post(f"{api.url}/recommendations/batch", params={"run_date": "2026-02-10"}, json=[1])
    unserved = httpx.post(f"{api.url}/recommendations/batch", params={"run_date": "2026-03-01"}, json=[1])

    assert older.status_code == 200 and older.json()["customers"][0]["run_date"] == "2026-02-10"
    assert unserved.status_code == 404 and "run_date 2026-03-01 is not served" in unserved.json()["detail"]


def test_batch_limits_and_malformed_bodies_are_422(serve_api, module_snapshot):
    api = serve_api(module_snapshot, max_batch=5)
    with api.client() as client:
        too_many_get = client.get("/recommendations/batch", params={"customer_ids": list(range(1, 7))})
        too_many_post = client.post("/recommendations/batch", json=list(range(1, 7)))
        exactly_max = client.post("/recommendations/batch", json=list(range(1, 6)))
        empty = client.post("/recommendations/batch", json=[])
        not_a_list = client.post("/recommendations/batch", json={"customer_ids": [1]})
        bad_item = client.post("/recommendations/batch", json=[1, "x"])
        not_json = client.post("/recommendations/batch", content=b"[1,", headers={"content-type": "application/json"})
        no_ids = client.get("/recommendations/batch")
        json_type = {"content-type": "application/json"}
        not_utf8 = client.post("/recommendations/batch", content=b"[1, \xff]", headers=json_type)
        huge = client.post("/recommendations/batch", content=b"[" + b" " * 10_000 + b"1]", headers=json_type)

    assert exactly_max.status_code == 200
    for response in (too_many_get, too_many_post):
        assert response.status_code == 422
        assert response.json()["detail"][0]["msg"] == "List should have at most 5 items after validation, not 6"
    for response in (empty, not_a_list, bad_item, not_json, no_ids, not_utf8):
        assert response.status_code == 422, response.text
    assert not_utf8.json()["detail"][0]["type"] == "json_invalid"  # FastAPI alone would say 400
    assert huge.status_code == 413  # the body limit scales with METRO_API_MAX_BATCH (here 5)


def test_openapi_documents_every_endpoint_and_error(api):
    schema = httpx.get(f"{api.url}/openapi.json").json()

    assert set(schema["paths"]) == {"/health", "/recommendations", "/recommendations/batch"}
    assert set(schema["paths"]["/recommendations/batch"]) == {"get", "post"}
    assert {"200", "404", "422", "503"} <= set(schema["paths"]["/recommendations"]["get"]["responses"])
    batch = schema["paths"]["/recommendations/batch"]["get"]["parameters"][0]["schema"]
    assert batch["maxItems"] == 1000 and batch["minItems"] == 1
    assert httpx.get(f"{api.url}/docs").status_code == 200


# Query strings near the fast path's accepted forms, so both branches of each parse decision get exercised.
_values = st.one_of(
    st.integers(-3, 4100).map(str),
    st.sampled_from(
        ["007", "+5", "%2B5", " 5", "5 ", "1e3", "1_000", "5.0", "nan", "inf", "1e400", "1770768000", "-0",
         "2026-02-10", "2026-02-11", "2026-2-11", "2026-02-30", "2026-02-11T00:00", "", "%35", "0x1"]
    ),
    st.text(alphabet="0123456789-=&%+ab", max_size=8),
    st.just(str(2**63 - 1)),
    st.just(str(2**63)),
)
_queries = st.lists(
    st.tuples(st.sampled_from(["customer_id", "run_date", "limit", "customer", "customer_id", "limit"]), _values),
    min_size=0,
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@pytest.fixture(scope="module")
def clients(api, plain_api):
    with api.client() as fast, plain_api.client() as plain:
        yield fast, plain


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=_queries)
@example(query="customer_id=3")
@example(query="limit=100&run_date=2026-02-10&customer_id=3")
@example(query="customer_id=007")
@example(query="customer_id=%33")
@example(query="customer_id=3&customer_id=5")
@example(query="customer_id=3&run_date=2026-02-30")
@example(query="customer_id=3&limit=101")
@example(query=f"customer_id={2**63 - 1}")
@example(query="customer_id=3&utm_source=mail")
def test_the_fast_path_answers_exactly_like_fastapi(clients, query):
    fast_client, plain_client = clients
    fast = fast_client.get(f"/recommendations?{query}")
    plain = plain_client.get(f"/recommendations?{query}")

    assert fast.status_code < 500
    assert (fast.status_code, fast.content) == (plain.status_code, plain.content)
    assert fast.headers["content-type"] == plain.headers["content-type"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_make_serve_command_serves_the_snapshot_without_loading_dagster(module_snapshot, tmp_path):
    """`make serve` runs `python -m api.server`: same command here, on a free port, settings from the environment."""
    makefile = (ROOT / "Makefile").read_text()
    assert "$(BIN)/python -m api.server --host 127.0.0.1 --port 8000" in makefile
    port = free_port()
    env = {**os.environ, "METRO_SERVING": str(module_snapshot), "METRO_API_MAX_HEADER_KB": "4"}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert str(module_snapshot.parent) not in health.text  # no server paths for clients
        assert httpx.get(f"http://127.0.0.1:{port}/recommendations?customer_id=1").status_code == 200
        # The guarded protocol is in place, with the limit from the environment.
        big = httpx.get(f"http://127.0.0.1:{port}/health", headers={"x-pad": "a" * 5000})
        assert big.status_code == 431
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    # The API process stays lean: no Dagster, no DuckDB.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, api.app, api.server; print([m for m in ('dagster', 'duckdb') if m in sys.modules])"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("METRO_API_MAX_BATCH", "lots", "METRO_API_MAX_BATCH='lots' is not a whole number"),
        ("METRO_API_READ_TIMEOUT_SECONDS", "0", "METRO_API_READ_TIMEOUT_SECONDS=0 must be between 0.1 and 600"),
    ],
)
def test_a_bad_setting_stops_the_server_with_one_line(tmp_path, variable, value, message):
    env = {**os.environ, variable: value, "METRO_SERVING": str(tmp_path / "s.parquet")}

    done = subprocess.run(
        [sys.executable, "-m", "api.server", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )

    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == f"metro-offers api: {message}"
    assert "Traceback" not in done.stderr


def test_without_a_snapshot_everything_is_503_and_says_which_file(serve_api, tmp_path):
    api = serve_api(tmp_path / "missing.parquet")
    with api.client() as client:
        health = client.get("/health")
        single = client.get("/recommendations", params={"customer_id": 1})
        batch = client.post("/recommendations/batch", json=[1])

    assert health.status_code == 503
    detail = Unavailable.model_validate_json(health.content).detail
    assert detail.endswith("(METRO_SERVING file missing.parquet)") and str(tmp_path) not in health.text
    assert single.status_code == batch.status_code == 503
    assert "no serving snapshot loaded yet" in single.json()["detail"]


def test_docs_pages_load_their_assets_from_this_server_not_a_cdn(api):
    """/docs and /redoc work on a machine without internet: every script, style and icon is local."""
    import re

    with api.client() as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page)
            assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
            refs = re.findall(r'(?:src|href)="([^"]+)"', html.text) + re.findall(r"url: '([^']+)'", html.text)
            assert refs and not [r for r in refs if "://" in r or r.startswith("//")], refs
            for ref in (r for r in refs if r.startswith("/docs-assets/")):
                asset = client.get(ref)
                assert asset.status_code == 200 and len(asset.content) > 1000, ref
        assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text
        assert client.get("/openapi.json").json()["openapi"].startswith("3.1")  # Swagger UI 5 renders 3.1
