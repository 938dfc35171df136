"""The retrain and daily_pipeline jobs through real Dagster runs on tiny data."""

import importlib.util
from datetime import timedelta

import duckdb
import polars as pl
from dagster import DagsterInstance

from metro_assets.definitions import build_defs
from metro_assets.serving import read_committed_marker
from metro_assets.settings import load_settings
from metro_assets_tests.conftest import HISTORY_END

RUN_DAY = HISTORY_END  # 2025-09-26


def run(job: str, day, instance=None):
    defs = build_defs(load_settings())
    return defs.get_job_def(job).execute_in_process(
        partition_key=day.isoformat(), instance=instance or DagsterInstance.ephemeral(), raise_on_error=False)


def _materialized(result, asset: str) -> dict | None:
    """The metadata of ``asset``'s materialization in ``result`` (plain values), or None."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in events[0].materialization.metadata.items()} if events else None


def test_retrain_then_daily_pipeline_serve_a_top_10_per_customer(tiny_warehouse, tiny_env):
    instance = DagsterInstance.ephemeral()
    # the first publish fails after the recommendations were committed: METRO_SERVING is a folder
    tiny_env.serving.mkdir()
    retrain = run("retrain", RUN_DAY - timedelta(days=4), instance)
    assert not retrain.success
    failures = {e.step_key: e.step_failure_data.error.message for e in retrain.all_events if e.is_step_failure}
    assert list(failures) == ["serving_snapshot"], failures
    (line,) = failures["serving_snapshot"].strip().splitlines()  # one line, no traceback
    assert line.endswith(f"METRO_SERVING={tiny_env.serving} is a folder, not a file")
    assert _materialized(retrain, "recommendations") is not None
    assert not any(e.is_step_up_for_retry for e in retrain.all_events)  # a setting, not a passing failure
    # the API can tell: the committed marker is ahead of any snapshot
    assert read_committed_marker(tiny_env.serving) == RUN_DAY - timedelta(days=4)
    tiny_env.serving.rmdir()

    daily = run("daily_pipeline", RUN_DAY, instance)
    assert daily.success
    checks = daily.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]

    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    recs = con.sql("select * from recommendations where run_date = ?", params=[RUN_DAY]).pl()
    models = con.sql("select * from model_versions").pl()
    con.close()
    torch = ["wide_deep"] if importlib.util.find_spec("torch") else []  # the third kind needs PyTorch
    rankers = models.filter(~pl.col("kind").str.starts_with("uplift_"))
    assert sorted(rankers["kind"]) == ["blend", "lightgbm", "logistic_regression", *torch]
    assert models["selected"].sum() == 1 and rankers["train_seconds"].min() > 0
    # the four uplift learners (one is the best, none serves)
    uplift = models.filter(pl.col("kind").str.starts_with("uplift_"))
    assert sorted(uplift["kind"]) == ["uplift_s", "uplift_t", "uplift_to", "uplift_x"]
    assert uplift["best_uplift"].sum() == 1 and not uplift["selected"].any()
    assert uplift["validation_qini"].null_count() == 0
    version = models.filter("selected")["model_version"][0]
    assert recs["model_version"].unique().to_list() == [version]
    # the default objective (redemptions): the score is the ranker's p_redeem, and the best learner's uplift is kept
    assert (recs["score"] == recs["p_redeem"]).all() and recs["uplift"].null_count() == 0
    per_customer = recs.group_by("customer_id").agg(pl.len(), pl.col("rank").max())
    assert per_customer["len"].max() == 10 and (per_customer["len"] == per_customer["rank"]).all()
    # why each offer: stored with the row, 1-3 phrases (ranking/reasons.py), carried into the snapshot below
    assert recs["reasons"].null_count() == 0 and recs["reasons"].list.len().is_between(1, 3).all()
    assert _materialized(daily, "recommendations")["reasons_seconds"] >= 0

    # the next run's publish serves the newest day and the day whose publish failed
    path = tiny_env.serving
    snapshot = pl.read_parquet(path)
    assert set(snapshot["run_date"].unique()) == {RUN_DAY - timedelta(days=4), RUN_DAY}
    assert snapshot.filter(pl.col("run_date") == RUN_DAY).height == recs.height
    assert snapshot["product_name"].null_count() == 0
    served = snapshot.filter(pl.col("run_date") == RUN_DAY).join(recs, on=["customer_id", "offer_id"])
    assert served.height == recs.height and (served["reasons"] == served["reasons_right"]).all()
    published = _materialized(daily, "serving_snapshot")
    assert published["file"] == "serving.parquet" and published["path"] == str(path)
    assert published["dagster/row_count"] == snapshot.height and published["bytes"] == path.stat().st_size
    assert published["run_date"] == RUN_DAY.isoformat() and published["model_version"] == version
    assert published["run_dates"] == [(RUN_DAY - timedelta(days=4)).isoformat(), RUN_DAY.isoformat()]
    assert read_committed_marker(path) == RUN_DAY  # the snapshot has caught up with the warehouse


def test_daily_pipeline_without_a_model_fails_with_a_clear_message(tiny_warehouse, tiny_env):
    result = run("daily_pipeline", RUN_DAY)
    assert not result.success
    messages = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    assert any("no ranker_model trained on or before 2025-09-26" in m for m in messages)


def test_rerunning_a_day_replaces_its_recommendations(tiny_warehouse, tiny_env):
    instance = DagsterInstance.ephemeral()
    assert run("retrain", RUN_DAY, instance).success
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    first = con.sql("select * from recommendations order by all").pl().drop("created_at")
    con.close()
    assert run("daily_pipeline", RUN_DAY, instance).success
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    again = con.sql("select * from recommendations order by all").pl().drop("created_at")
    models = con.execute("select count(*) from model_versions").fetchall()[0][0]
    con.close()
    kinds = 4 if importlib.util.find_spec("torch") else 3  # wide_deep trains where PyTorch is installed
    assert first.equals(again) and models == kinds + 4  # one row per kind and uplift learner, not added again


def test_a_run_over_several_days_scores_and_keeps_each_day(tiny_warehouse, tiny_env):
    from dagster import AssetKey, AssetRecordsFilter

    instance = DagsterInstance.ephemeral()
    assert run("retrain", RUN_DAY - timedelta(days=4), instance).success
    first, last = RUN_DAY - timedelta(days=2), RUN_DAY - timedelta(days=1)
    result = build_defs(load_settings()).get_job_def("daily_pipeline").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat()})
    assert result.success
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    per_day = dict(con.sql("select run_date, count(*) from recommendations group by all").fetchall())
    con.close()
    assert per_day[first] > 0 and per_day[last] > 0  # the window's first day is not the only one kept
    for day in (first, last):
        [record] = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("recommendations"), asset_partitions=[day.isoformat()]),
            limit=1).records
        assert record.event_log_entry.asset_materialization.metadata["dagster/row_count"].value == per_day[day]


def test_the_margin_objective_allocates_within_caps_and_never_shows_negative_uplift(tiny_warehouse, tiny_env,
                                                                                      monkeypatch):
    monkeypatch.setenv("METRO_OBJECTIVE", "incremental_margin")
    monkeypatch.setenv("METRO_OFFER_BUDGET", "40")
    instance = DagsterInstance.ephemeral()
    retrain = run("retrain", RUN_DAY, instance)
    assert retrain.success
    checks = [c for c in retrain.get_asset_check_evaluations() if c.asset_key.to_user_string() == "recommendations"]
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    meta = _materialized(retrain, "recommendations")
    assert meta["objective"] == "incremental_margin" and meta["uplift_version"].startswith(f"{RUN_DAY}-uplift_")
    assert meta["value_lost_to_caps"] >= 0 and meta["pairs_never_shown"] > 0
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    recs = con.sql("select * from recommendations where run_date = ?", params=[RUN_DAY]).pl()
    # every shown offer has a predicted uplift >= 0 and a positive expected incremental margin (its score)
    assert recs.height > 0 and (recs["uplift"] >= 0).all() and (recs["score"] > 0).all()
    assert recs.group_by("customer_id").len()["len"].max() <= 10
    # no offer's expected redemptions (position 1: an upper bound) exceed what is left of its cap or budget
    over = con.sql("""
        with used as (select r.offer_id, sum(r.p_redeem) as n from recommendations r where run_date = $d group by all),
             left_ as (select o.offer_id, o.max_redemptions - count(x.offer_id) as remaining
                       from offers o left join redemptions x on x.offer_id = o.offer_id and x.day < $d
                       where o.max_redemptions is not null group by o.offer_id, o.max_redemptions)
        select count(*) from used join left_ using (offer_id) where n > remaining + 1e-9""",
                   params={"d": RUN_DAY}).fetchall()[0][0]
    con.close()
    assert over == 0
