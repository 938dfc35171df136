"""The `reasons` field: documented in the OpenAPI schema, and every response validates against that schema."""

import httpx
import jsonschema
import polars as pl
import pytest

from metro_assets.errors import DataError
from metro_assets.serving import write_snapshot
from metro_assets_tests.api.snapshots import customer_ids, synthetic_snapshot


def _validator(spec: dict, name: str) -> jsonschema.Draft202012Validator:
    """A JSON Schema validator for the OpenAPI component ``name`` (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": spec["components"]})


def test_reasons_are_documented_and_served_as_the_openapi_schema_says(api, snapshot_frame):
    spec = httpx.get(f"{api.url}/openapi.json").json()
    field = spec["components"]["schemas"]["OfferRecommendation"]["properties"]["reasons"]
    assert field["type"] == "array" and field["items"] == {"type": "string"}
    assert "reasons" in spec["components"]["schemas"]["OfferRecommendation"]["required"]
    assert "Why this offer" in field["description"]
    single, batch = _validator(spec, "RecommendationResponse"), _validator(spec, "BatchResponse")
    newest = snapshot_frame["run_date"].max()
    ids = customer_ids(5).tolist()
    with api.client() as client:
        for customer_id in ids:
            body = client.get("/recommendations", params={"customer_id": customer_id}).json()
            single.validate(body)  # raises naming the field that breaks the schema
            expected = (snapshot_frame.filter((pl.col("run_date") == newest) & (pl.col("customer_id") == customer_id))
                        .sort("rank")["reasons"].to_list())
            assert [r["reasons"] for r in body["recommendations"]] == expected and all(expected)
        got = client.post("/recommendations/batch", json=ids, params={"limit": 3}).json()
        batch.validate(got)
        assert [len(c["recommendations"]) for c in got["customers"]] == [3] * len(ids)
    # the schema would catch a broken field: reasons must be a list of strings
    broken = {**body, "recommendations": [{**body["recommendations"][0], "reasons": "30% off"}]}
    assert not single.is_valid(broken)


def test_a_snapshot_from_before_reasons_still_serves_with_empty_reasons(serve_api, tmp_path):
    path = tmp_path / "serving.parquet"
    synthetic_snapshot(customers=3, offers_per_customer=2, run_dates=1).drop("reasons").write_parquet(path)
    assert "reasons" not in pl.read_parquet_schema(path)  # as an older pipeline published it
    server = serve_api(path)
    with server.client() as client:
        body = client.get("/recommendations", params={"customer_id": 1}).json()
        health = client.get("/health").json()
    assert [r["reasons"] for r in body["recommendations"]] == [[], []]
    assert health["status"] == "ok"


@pytest.mark.parametrize("reasons", [[None], [""]])
def test_the_snapshot_contract_refuses_a_null_or_empty_phrase(tmp_path, reasons):
    frame = synthetic_snapshot(customers=3, offers_per_customer=2, run_dates=1)
    broken = pl.lit(reasons, dtype=pl.List(pl.Utf8))
    frame = frame.with_columns(reasons=pl.when(pl.int_range(pl.len()) == 4).then(broken).otherwise("reasons"))
    with pytest.raises(DataError, match=r"^serving snapshot: customer 5 on 2026-02-10 has a null or empty reason "
                                        r"for offer \d+$"):
        write_snapshot(frame, tmp_path / "serving.parquet")
    assert not (tmp_path / "serving.parquet").exists()
