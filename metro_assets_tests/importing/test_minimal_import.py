"""An import with only the required columns: no segments, no discount values, no optional ids."""

import polars as pl
import pytest

from metro_assets.importing.contract import CONTRACT, TABLES
from metro_assets.raw.source import raw_batch
from metro_assets.warehouse import connect, replace_partitions
from metro_assets_tests.conftest import START
from metro_assets_tests.importing.conftest import materialize_raw, read_tables, rewrite


@pytest.fixture
def minimal_export(editable_export):
    for table in TABLES:
        rewrite(editable_export, table, lambda f, t=table: f.select(c.name for c in CONTRACT[t].required))
    return editable_export


def test_an_import_of_required_columns_only_materializes(tiny_world_file, minimal_export, import_env):
    settings = import_env(minimal_export)
    result = materialize_raw(settings)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    got, want = read_tables(settings.warehouse), read_tables(tiny_world_file)

    assert got["customers"]["segment"].unique().to_list() == ["unknown"]
    assert got["offers"].select(pl.col("discount_type", "discount_value").is_null().all()).row(0) == (True, True)
    assert got["customers"]["email_consent"].sum() == 0

    # derived: totals and line counts from the lines (no discounts given), ids in file order
    lines = want["order_items"].group_by("order_id").agg(
        total=(pl.col("quantity") * pl.col("unit_price")).sum().round(2), n=pl.len())
    orders = got["orders"].join(lines, on="order_id")
    assert orders.height == want["orders"].height
    assert (orders["total_amount"] - orders["total"]).abs().max() < 1e-9
    assert orders["num_items"].cast(pl.UInt32).equals(orders["n"], check_names=False)
    assert got["order_items"]["order_item_id"].to_list() == list(range(1, want["order_items"].height + 1))
    assert got["order_items"]["is_promo"].sum() == 0

    # derived: a redemption's order is the customer's order that day with the offer's product
    assert got["redemptions"]["order_id"].equals(want["redemptions"]["order_id"])

    # derived: joined on the first order (else the first day), priced at the median sale
    first = want["orders"].group_by("customer_id").agg(first=pl.col("day").min())
    joined = got["customers"].join(first, on="customer_id", how="left")
    assert joined.filter(pl.col("join_date") != pl.col("first").fill_null(START)).height == 0
    median = want["order_items"].group_by("product_id").agg(price=pl.col("unit_price").median().round(2))
    priced = got["products"].join(median, on="product_id")
    # (to the cent: DuckDB and Polars round half cents differently)
    assert priced.height > 0 and (priced["base_price"] - priced["price"]).abs().max() < 0.0101
    assert got["products"]["base_price"].null_count() == 0


@pytest.fixture
def minimal_features(minimal_export, import_env):
    """Features of the impressions of one day, from the minimal import (written without Dagster)."""
    compute = pytest.importorskip("metro_assets.features.compute")
    settings = import_env(minimal_export)
    batch = raw_batch(settings, settings.start_date, settings.partitions_end)
    with connect(settings.warehouse) as con:
        replace_partitions(con, batch.tables, settings.start_date, settings.partitions_end)
        con.execute("create temp table requests as select customer_id, offer_id, day from impressions "
                    "where day = date '2025-09-20'")
        matrix = compute.feature_matrix(con, "requests")
    assert matrix.height > 0
    return matrix


def test_features_treat_unknown_segments_as_their_own(minimal_features):
    assert minimal_features.select(pl.sum_horizontal(pl.col("^segment_.*$")).max()).item() == 0
    assert minimal_features["recency_days"].null_count() < minimal_features.height


def test_features_treat_unknown_depths_as_unknown(minimal_features):
    assert minimal_features["discount_depth"].null_count() == minimal_features.height
    assert minimal_features["margin_impact"].null_count() == minimal_features.height


def test_an_import_without_segments_or_discounts_runs_end_to_end(minimal_export, import_env):
    definitions = pytest.importorskip("metro_assets.definitions")
    from dagster import DagsterInstance

    settings = import_env(minimal_export)
    assert materialize_raw(settings).success
    job = definitions.build_defs(settings).get_job_def("retrain")
    result = job.execute_in_process(partition_key=settings.history_end.isoformat(),
                                    instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    assert pl.read_parquet(settings.serving).height > 0
