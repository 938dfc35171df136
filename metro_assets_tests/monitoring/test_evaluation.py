"""Offline evaluation on a tiny world: policies, oracle, incomplete label windows, imported data, the asset."""

import shutil

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance, materialize
from dagster_duckdb import DuckDBResource

from metro_assets.monitoring.assets import build_monitoring_assets
from metro_assets.monitoring.evaluation import (
    METRICS,
    POLICIES,
    evaluate,
    label_window,
    markdown_table,
    wide_table,
    write_evaluation,
)
from metro_assets.monitoring.metrics import RANKING_METRICS
from metro_assets_tests.monitoring.conftest import DAY, LATE


@pytest.fixture(scope="module")
def result(evaluated_file):
    with duckdb.connect(str(evaluated_file), read_only=True) as con:
        return evaluate(con, DAY)


def value(rows, policy, metric):
    return rows.filter((pl.col("policy") == policy) & (pl.col("metric") == metric))["value"].item()


def test_every_policy_gets_every_metric_on_the_same_customers(result):
    assert result.complete and not result.notes
    assert set(result.rows["policy"]) == set(POLICIES)
    assert result.rows.group_by("policy").len()["len"].unique().to_list() == [len(METRICS)]
    evaluated = result.rows.filter(pl.col("metric") == "customers_evaluated")["value"]
    assert evaluated.n_unique() == 1 and evaluated[0] > 10  # the same customers for every policy
    served = result.versions["model"]
    kind = served.split("-", 3)[-1]
    # the served kind is the served recommendations themselves
    for metric in METRICS:
        assert value(result.rows, "model", metric) == value(result.rows, kind, metric)


def test_ranking_metrics_are_shares_and_the_oracle_bounds_everyone(result):
    rows = result.rows
    ranking = rows.filter(pl.col("metric").is_in(RANKING_METRICS))["value"]
    assert ((ranking >= 0) & (ranking <= 1)).all()
    best = value(rows, "oracle", "expected_redemptions_at_10")
    for policy in POLICIES:
        assert value(rows, policy, "expected_redemptions_at_10") <= best + 1e-9
        assert value(rows, policy, "incremental_redemptions_at_10") < value(rows, policy, "expected_redemptions_at_10")
    assert value(rows, "oracle", "oracle_share_at_10") == pytest.approx(1.0)
    # even at tiny scale (40 live offers, small pools) the model is well above random
    model, random = (value(rows, p, "expected_redemptions_at_10") for p in ("model", "random"))
    assert model > 1.2 * random


def test_the_label_window_must_be_in_the_warehouse(con):
    assert label_window(con, DAY)[2] and not label_window(con, LATE)[2]
    late = evaluate(con, LATE)
    assert not late.complete and late.rows.height == 0 and "not fully in the warehouse" in late.notes[0]
    assert write_evaluation(con, late) == 0
    assert con.sql("select count(*) from offline_evaluation").fetchall()[0][0] == 0


def test_recording_twice_replaces_the_day(con, result):
    assert write_evaluation(con, result) == result.rows.height
    assert write_evaluation(con, result) == result.rows.height
    assert con.sql("select count(*) from offline_evaluation").fetchall()[0][0] == result.rows.height


def test_without_the_oracle_the_observed_metrics_remain(con):
    for table in ("sim.customer_traits", "sim.customer_category_traits", "sim.product_traits"):
        con.execute(f"delete from {table}")  # as for imported data
    result = evaluate(con, DAY)
    assert result.complete and "oracle unavailable" in result.notes[0]
    assert "oracle" not in set(result.rows["policy"])
    assert set(result.rows["metric"]) == set(RANKING_METRICS) | {"customers_evaluated", "customers_without_redemptions",
                                                                "customers_scored"}


def test_the_wide_and_markdown_tables(result):
    wide = wide_table(result.rows)
    assert wide.columns == ["metric", *POLICIES] and wide["metric"].to_list() == list(METRICS)
    assert markdown_table(result.rows).startswith("| metric | model | lightgbm")


def test_the_asset_records_a_day_and_skips_a_day_without_its_week(evaluated_file, tiny_env):
    shutil.copy(evaluated_file, tiny_env.warehouse)
    assets = build_monitoring_assets(tiny_env)
    resources = {"warehouse": DuckDBResource(database=str(tiny_env.warehouse))}
    evaluation = [a for a in assets if a.key.path == ["offline_evaluation"]]
    with DagsterInstance.ephemeral() as instance:
        done = materialize(evaluation, partition_key=DAY.isoformat(), resources=resources, instance=instance)
        skipped = materialize(evaluation, partition_key=LATE.isoformat(), resources=resources, instance=instance)
    assert done.success and skipped.success
    meta = done.asset_materializations_for_node("offline_evaluation")[0].metadata
    assert meta["recorded"].value is True and "| ndcg_at_10 |" in meta["evaluation"].value
    assert 0 < meta["model_oracle_share_at_10"].value <= 1
    assert all(c.passed for c in done.get_asset_check_evaluations())
    late = skipped.asset_materializations_for_node("offline_evaluation")[0].metadata
    assert late["recorded"].value is False and "not fully in the warehouse" in late["notes"].value
    with duckdb.connect(str(tiny_env.warehouse), read_only=True) as con:
        days = con.sql("select distinct run_date from offline_evaluation").fetchall()
    assert days == [(DAY,)]
