"""Strict input over the real server: non-JSON numbers, loose integers and dates are 422, never 500 or accepted."""

import json

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("body", [b"[NaN]", b"[Infinity]", b"[-Infinity]", b"[1e400]", b"[3, -1e999]", b"[1, NaN]"])
def test_non_finite_and_overflowing_numbers_in_a_batch_are_422_naming_the_token(api, body):
    response = httpx.post(f"{api.url}/recommendations/batch", content=body, headers=JSON)

    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    token = body.decode().strip("[]").split(", ")[-1]
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"
    assert error["msg"] == f"Body is not valid JSON: {token} is not a JSON number (ids are whole numbers like 42)"


@pytest.mark.parametrize(("body", "error"), [([True], "int_type"), (["5"], "int_type"), ([3, False], "int_type"),
                                           ([1.5], "int_from_float")])
def test_a_batch_holds_whole_json_numbers_only(api, body, error):
    response = httpx.post(f"{api.url}/recommendations/batch", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == error


def test_a_whole_number_written_with_a_fraction_is_an_id_as_json_schema_says(api):
    response = httpx.post(f"{api.url}/recommendations/batch", content=b"[3.0, 5]", headers=JSON)

    assert response.status_code == 200 and [c["customer_id"] for c in response.json()["customers"]] == [3, 5]


@pytest.mark.parametrize("api_fixture", ["api", "plain_api"])
@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("customer_id=%2B5", "customer_id"),  # +5
        ("customer_id=+5", "customer_id"),  # '+' is a space in a query string: ' 5'
        ("customer_id=1_000", "customer_id"),
        ("customer_id=007", "customer_id"),
        ("customer_id=5.0", "customer_id"),
        ("customer_id=3&run_date=1770768000", "run_date"),  # a unix time
        ("customer_id=3&run_date=2026-02-11T00:00:00", "run_date"),
        ("customer_id=3&run_date=20260211", "run_date"),
        ("customer_id=3&limit=%2B3", "limit"),
        ("customer_id=3&limit=1_0", "limit"),
    ],
)
def test_loose_numbers_and_dates_in_the_query_are_422(api_fixture, request, query, where):
    url = request.getfixturevalue(api_fixture).url

    response = httpx.get(f"{url}/recommendations?{query}")

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", where]


def test_batch_ids_in_the_query_are_strict_too(api):
    response = httpx.get(f"{api.url}/recommendations/batch?customer_ids=3&customer_ids=1_000")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "customer_ids", 1]
    assert response.json()["detail"][0]["msg"] == "Input should be a whole number in plain decimal digits, like 42"


def test_canonical_forms_still_work(api):
    ok = httpx.get(f"{api.url}/recommendations", params={"customer_id": 3, "run_date": "2026-02-10", "limit": 2})
    batch = httpx.post(f"{api.url}/recommendations/batch", params={"limit": 1}, content=b" [ 3 ,\n 5 ] ", headers=JSON)

    assert ok.status_code == 200 and len(ok.json()["recommendations"]) == 2
    assert batch.status_code == 200 and [c["customer_id"] for c in batch.json()["customers"]] == [3, 5]


# JSON-ish bodies with what Python's json module accepts but JSON does not: NaN, Infinity, huge numbers.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                         max_size=3), max_leaves=12)
_number_tokens = st.from_regex(r"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,5})?([eE][+-]?[0-9]{1,4})?\Z")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(body=st.one_of(
    _values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.lists(_number_tokens, min_size=1, max_size=5).map(lambda tokens: "[" + ",".join(tokens) + "]"),
))
@example(body="[NaN]")
@example(body="[1e400]")
@example(body="[true]")
@example(body="[" * 5000 + "]" * 5000)
@example(body="[" + "9" * 5000 + "]")
def test_no_json_body_breaks_the_batch(api, body):
    response = httpx.post(f"{api.url}/recommendations/batch", content=body.encode(), headers=JSON)

    assert response.status_code in (200, 413, 422), (body, response.status_code, response.text)
    response.json()  # always a JSON body
    if response.status_code == 200:
        ids = json.loads(body)
        assert all(type(i) is not bool and float(i).is_integer() and 1 <= i < 2**63 for i in ids)
