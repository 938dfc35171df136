"""METRO_POLICY=thompson in the daily pipeline: the daily posterior, the sampled allocation, real Dagster runs."""

import json
import shutil
from datetime import timedelta

import duckdb
import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance

from metro_assets.bandit.production import fit_posterior, load_posterior, thompson_pool_scores, write_posterior
from metro_assets.definitions import build_defs
from metro_assets.errors import DataError, SettingError
from metro_assets.ranking.scoring import score_pool, selected_model, top_k
from metro_assets.settings import load_settings
from metro_assets.warehouse import ensure_schema
from metro_assets_tests.conftest import HISTORY_END
from metro_assets_tests.pipeline import features_and_pool, train, writable_copy

DAY = HISTORY_END - timedelta(days=7)  # a day with a week of log after it (to prove nothing later is read)


@pytest.fixture(scope="module")
def day_file(tiny_world_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("thompson") / "warehouse.duckdb"
    shutil.copy(tiny_world_file, path)
    with duckdb.connect(str(path)) as con:
        ensure_schema(con)
        train(con, DAY)
        features_and_pool(con, DAY)
    return path


@pytest.fixture
def con(day_file, tmp_path):
    with writable_copy(day_file, tmp_path) as con:
        yield con


def test_the_posterior_moves_from_the_weekly_ranker_and_reads_nothing_of_its_day_or_later(con):
    row = fit_posterior(con, DAY, seed=42)
    post = json.loads(row["posterior"])
    version, stored = selected_model(con, DAY, kind="logistic_regression")
    prior = json.loads(stored.blob)
    assert row["model_version"] == version and row["impressions"] > 0 and 0 < row["positives"] < row["impressions"]
    cov = np.asarray(post["coef_cov"])
    assert np.all(np.linalg.eigvalsh(cov) > 0)  # a proper Gaussian
    assert not np.allclose(post["coef_mean"][1:], prior["coef"], atol=1e-3)  # the data moved it
    # point in time: the log of D and later changes nothing
    con.execute("DELETE FROM redemptions WHERE day >= ?", [DAY])
    con.execute("DELETE FROM impressions WHERE day >= ?", [DAY])
    again = fit_posterior(con, DAY, seed=42)
    assert again["posterior"] == row["posterior"]


def test_thompson_scores_are_draws_around_the_ranker_reproducible_and_served_by_the_same_rule(con):
    with pytest.raises(DataError, match="no bandit_posterior for"):
        thompson_pool_scores(con, DAY, seed=42)
    write_posterior(con, fit_posterior(con, DAY, seed=42))
    write_posterior(con, fit_posterior(con, DAY, seed=42))  # replaced, not duplicated
    assert con.sql("select count(*) from bandit_posteriors").fetchall()[0][0] == 1
    assert load_posterior(con, DAY)[0].endswith("logistic_regression")
    version, a = thompson_pool_scores(con, DAY, seed=42)
    _, b = thompson_pool_scores(con, DAY, seed=42)
    _, c = thompson_pool_scores(con, DAY, seed=43)
    assert a.equals(b) and not a["score"].equals(c["score"])
    pool = con.sql("select count(*) from candidate_pool where day = ?", params=[DAY]).fetchall()[0][0]
    assert a.height == pool and a["score"].is_between(0, 1).all()
    mean = score_pool(con, DAY, selected_model(con, DAY, kind="logistic_regression")[1]).sort("customer_id",
                                                                                             "offer_id")
    both = a.sort("customer_id", "offer_id").with_columns(batch=mean["score"])
    assert both.select(pl.corr("score", "batch", method="spearman")).item() > 0.3  # draws around the model (tiny: wide)
    items = con.sql("select o.offer_id, o.product_id, p.category from offers o join products p using (product_id)").pl()
    ta, tb = top_k(a, 10, 3, items=items), top_k(both.drop("score").rename({"batch": "score"}), 10, 3, items=items)
    assert ta.join(items, on="offer_id").group_by("customer_id", "product_id").len()["len"].max() == 1
    changed = ta.join(tb, on=["customer_id", "offer_id"], how="anti").height
    assert 0 < changed < ta.height  # sampling explores: some lists change, most of the ranking holds


def test_metro_policy_thompson_runs_inside_the_daily_pipeline(tiny_warehouse, tiny_env, monkeypatch):
    monkeypatch.setenv("METRO_POLICY", "thompson")
    defs = build_defs(load_settings())
    instance = DagsterInstance.ephemeral()
    day = HISTORY_END
    for job, run_day in (("retrain", day - timedelta(days=4)), ("daily_pipeline", day)):
        result = defs.get_job_def(job).execute_in_process(partition_key=run_day.isoformat(), instance=instance,
                                                         raise_on_error=False)
        assert result.success, job
        done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert {"bandit_posterior", "recommendations", "serving_snapshot"} <= done
    checks = result.get_asset_check_evaluations()  # the daily pipeline's
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        served = con.sql("select * from recommendations where run_date = ?", params=[day]).pl()
        posterior = con.sql("select * from bandit_posteriors").pl()
    assert sorted(posterior["day"].to_list()) == [day - timedelta(days=4), day]
    snapshot = pl.read_parquet(tiny_env.serving).filter(pl.col("run_date") == day)
    assert snapshot.height == served.height > 0  # served through the same snapshot


def test_a_bad_metro_policy_is_one_line(monkeypatch):
    monkeypatch.setenv("METRO_POLICY", "ucb")
    with pytest.raises(SettingError, match=r"^METRO_POLICY='ucb' is not one of batch, thompson$"):
        load_settings()


def test_bandit_simulation_materializes_a_scenario_with_its_plot(tiny_env, monkeypatch):
    monkeypatch.setenv("METRO_BANDIT_WEEKS", "1")
    defs = build_defs(load_settings())
    result = defs.resolve_job_def("bandit").execute_in_process(partition_key="black_friday",
                                                              instance=DagsterInstance.ephemeral())
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["dagster/row_count"] == 7 * 5
    assert meta["cumulative_regret_plot"].startswith("![cumulative regret](data:image/png;base64,")
    assert meta["oracle_cumulative_regret"] == 0 and meta["random_cumulative_regret"] > meta["batch_cumulative_regret"]
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2 and all(c.passed for c in checks)
    with duckdb.connect(str(tiny_env.warehouse), read_only=True) as con:
        rows = con.sql("select scenario, seed, count(*) from bandit_simulation group by all").fetchall()
    assert rows == [("black_friday", 42, 35)]
    assert (tiny_env.warehouse.parent / "bandit" / "black_friday_tiny_42.png").stat().st_size > 10_000


def test_bandit_simulation_refuses_imported_data(tiny_env, monkeypatch, tmp_path):
    from metro_assets.bandit.assets import build_bandit_assets

    settings = load_settings()
    imported = type(settings)(**{**settings.__dict__, "source": f"parquet:{tmp_path}"})
    (asset,) = build_bandit_assets(imported)
    from dagster import materialize

    result = materialize([asset], partition_key="steady", raise_on_error=False,
                         resources={"warehouse": build_defs(settings).resources["warehouse"]})
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message.strip()
    assert "cannot answer a policy's choices" in message and len(message.splitlines()) == 1
