"""Wide & Deep, the third ranker kind, on tiny data: determinism, storage without pickle, selection, scoring, skips."""

import base64
import importlib.util
import json
import pickle
import shutil
import sys

import duckdb
import polars as pl
import numpy as np
import pytest
from dagster import DagsterInstance, materialize
from dagster_duckdb import DuckDBResource

from metro_assets.errors import DataError
from metro_assets.ranking import models, wide_deep
from metro_assets.ranking.assets import build_ranking_assets
from metro_assets.ranking.reasons import reasons_for
from metro_assets.ranking.scoring import offer_items, score_pool, selected_model, top_k
from metro_assets.ranking.training import (RANKER_FEATURES, TrainedModel, as_matrix, best_model, train_rankers,
                                           training_set)
from metro_assets.settings import DeepSettings, load_settings
from metro_assets_tests.conftest import HISTORY_END
from metro_assets_tests.pipeline import features_and_pool, train

DAY = HISTORY_END  # 2025-09-26
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch (extra [deep]) missing")
FEATURES = [*RANKER_FEATURES, *wide_deep.ID_FEATURES]


@pytest.fixture(scope="module")
def ts(tiny_world_file):
    with duckdb.connect(str(tiny_world_file), read_only=True) as con:
        return training_set(con, DAY)


def fit(ts, **params):
    y, yv = (f["label"].to_numpy().astype(int) for f in (ts.train, ts.validation))
    fitted = wide_deep.train_wide_deep(as_matrix(ts.train, FEATURES), y, FEATURES, ts.sampling_rate,
                                       ts.catalogue, as_matrix(ts.validation, FEATURES), yv,
                                       params=wide_deep.WideDeepParams(**params))
    stored = models.StoredModel(wide_deep.WIDE_DEEP_KIND, fitted.blob, FEATURES, ts.sampling_rate,
                                fitted.importances)
    return stored, fitted.report


@pytest.fixture(scope="module")
def fitted(ts):
    return fit(ts)


@pytest.fixture(scope="module")
def scored_file(tiny_world_file, tmp_path_factory):
    """The tiny history with every kind trained for DAY and the day's features and pool (read-only template)."""
    path = tmp_path_factory.mktemp("wide_deep") / "warehouse.duckdb"
    shutil.copy(tiny_world_file, path)
    with duckdb.connect(str(path)) as con:
        train(con, DAY)
        features_and_pool(con, DAY)
    return path


@needs_torch
def test_the_same_seed_gives_the_same_model_bits(ts, fitted):
    stored, report = fitted
    again, _ = fit(ts)
    assert again.blob == stored.blob  # weights, lookups and configuration, bit for bit
    assert fit(ts, seed=8)[0].blob != stored.blob
    assert 1 <= report.best_epoch <= report.epochs and report.seconds > 0


@needs_torch
def test_weights_round_trip_without_pickle(ts, fitted, monkeypatch):
    stored, _ = fitted
    document = json.loads(stored.blob)  # text: JSON with base64 safetensors inside
    from safetensors.numpy import load as load_safetensors

    tensors = load_safetensors(base64.b64decode(document["weights"]))
    assert {"net.wide_cross.weight", "net.wide_linear.weight", "lookup.customer_ids",
            "lookup.product_category"} <= set(tensors)
    X = as_matrix(ts.validation, FEATURES)
    before = models.load(stored).predict(X)

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle path was used")

    import torch

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    after = models.load(models.StoredModel(stored.kind, stored.blob, stored.features, stored.sampling_rate, {}))
    assert np.array_equal(after.predict(X), before)
    assert ((before > 0) & (before < 1)).all() and before.std() > 0


@needs_torch
def test_contributions_add_up_to_the_corrected_logit(ts, fitted):
    stored, _ = fitted
    loaded = wide_deep.load(stored.blob)
    X = as_matrix(ts.validation, FEATURES)
    contributions, bias = loaded.explain(X, stored.sampling_rate)
    p = loaded.predict(X, stored.sampling_rate)
    assert contributions.shape == (len(X), len(loaded.contribution_names()))
    assert np.allclose(contributions.sum(axis=1) + bias, np.log(p / (1 - p)), atol=1e-4)
    # the crosses and dense terms are the wide part: they move, row by row
    crosses = [loaded.contribution_names().index(name) for name, _ in wide_deep.CROSSES]
    assert contributions[:, crosses].std(axis=0).max() > 0
    assert set(stored.importances) == set(loaded.contribution_names())
    registered = models.load(stored).explain(X)  # models.EXPLAINERS["wide_deep"], what the reasons call
    assert registered.features == loaded.contribution_names()
    assert np.allclose(registered.values.sum(axis=1) + registered.bias, np.log(p / (1 - p)), atol=1e-4)
    names, again, bias_again = wide_deep.explain(stored.blob, X[:10], stored.sampling_rate)  # for reasons
    assert names == loaded.contribution_names() and np.allclose(again, contributions[:10], atol=1e-6)
    assert bias_again == bias


@needs_torch
def test_unknown_customers_and_products_score_with_the_unknown_rows(ts, fitted):
    loaded = wide_deep.load(fitted[0].blob)
    X = as_matrix(ts.validation.head(50), FEATURES)
    X[:, FEATURES.index("customer_id")] = -1
    X[:, FEATURES.index("product_id")] = np.nan
    p = loaded.predict(X, ts.sampling_rate)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


@needs_torch
def test_the_kind_is_stored_and_scores_through_the_serving_path(scored_file, tmp_path):
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(scored_file, copy)
    with duckdb.connect(str(copy)) as con:
        rows = con.sql("select kind, selected, features, train_seconds, selection_reason from model_versions").pl()
        version, stored = selected_model(con, DAY, kind="wide_deep")
        scored = score_pool(con, DAY, stored)
        pairs = con.sql(f"select count(*) from candidate_pool where day = '{DAY}'").fetchall()[0][0]
        top = top_k(scored, 10, items=offer_items(con))
        reasons = reasons_for(con, DAY, stored, top)  # the served rows explained through the registered explainer
    rows = rows.filter(~pl.col("kind").str.starts_with("uplift_"))  # the uplift learners are issue 17's
    assert sorted(rows["kind"]) == ["blend", "lightgbm", "logistic_regression", "wide_deep"]
    assert rows["selected"].sum() == 1 and (rows["train_seconds"] > 0).all()
    mine = rows.filter(kind="wide_deep").row(0, named=True)
    assert mine["features"][-2:] == ["customer_id", "product_id"] and "wide_deep: best of" in mine["selection_reason"]
    assert version == f"{DAY}-wide_deep"
    assert scored.height == pairs and scored["score"].is_between(0, 1, closed="none").all()
    assert scored["score"].n_unique() > pairs // 2  # the ids and crosses separate pairs, not one constant
    assert reasons.len() == top.height and reasons.list.len().is_between(1, 3).all()
    assert reasons.explode().str.len_chars().min() > 0


def _candidate(kind, auc, log_loss):
    return TrainedModel(models.StoredModel(kind, "", [], 1.0, {}), {"auc": auc, "log_loss": log_loss})


def test_wide_deep_serves_only_when_it_beats_the_others():
    lgbm, lr = _candidate("lightgbm", 0.78, 0.120), _candidate("logistic_regression", 0.77, 0.121)
    assert best_model([lgbm, lr, _candidate("wide_deep", 0.79, 0.119)]).stored.kind == "wide_deep"
    assert best_model([lgbm, lr, _candidate("wide_deep", 0.783, 0.121)]).stored.kind == "lightgbm"  # AUC tie
    assert best_model([lgbm, lr, _candidate("wide_deep", 0.783, 0.118)]).stored.kind == "wide_deep"  # log-loss
    assert best_model([lgbm, lr, _candidate("wide_deep", None, None)]).stored.kind == "lightgbm"


@needs_torch
def test_without_pytorch_the_kind_is_skipped_in_one_line(ts, fitted, monkeypatch):
    trained, reason = train_rankers(ts, DeepSettings(enabled=False))
    assert [m.stored.kind for m in trained] == ["lightgbm", "logistic_regression", "blend"]
    assert "wide_deep skipped: deep models off: METRO_DEEP=false" in reason
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a core install
    trained, reason = train_rankers(ts, DeepSettings())
    assert [m.stored.kind for m in trained] == ["lightgbm", "logistic_regression", "blend"]
    assert "wide_deep skipped: deep models off: PyTorch is not installed" in reason
    with pytest.raises(DataError, match="^a wide_deep model cannot score here: .*PyTorch is not installed[^\n]*$"):
        models.load(fitted[0])


def test_the_asset_says_why_the_kind_was_skipped(tiny_warehouse, tiny_env, monkeypatch):
    monkeypatch.setenv("METRO_DEEP", "false")
    assets = [a for a in build_ranking_assets(load_settings()) if a.key.path == ["ranker_model"]]
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, partition_key=DAY.isoformat(), instance=instance,
                             resources={"warehouse": DuckDBResource(database=str(tiny_warehouse))})
    assert result.success
    meta = result.asset_materializations_for_node("ranker_model")[0].metadata
    assert meta["wide_deep"].value == "wide_deep skipped: deep models off: METRO_DEEP=false"
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        rows = con.sql("select kind, selection_reason from model_versions where kind not like 'uplift_%'").fetchall()
    assert sorted(k for k, _ in rows) == ["blend", "lightgbm", "logistic_regression"]
    assert all("wide_deep skipped: deep models off: METRO_DEEP=false" in r for _, r in rows)
