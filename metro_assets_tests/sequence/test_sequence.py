"""SASRec (extra [deep]): the leave-last-basket-out metrics, determinism, point in time, and the asset
with and without PyTorch, at tiny scale."""

import shutil
import subprocess
import sys
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance
from scipy.sparse import csr_matrix

from metro_assets.definitions import build_defs
from metro_assets.sequence.history import encode, split_last_basket
from metro_assets.sequence.metrics import buy_again_top, popularity_top, ranking_metrics
from metro_assets.settings import load_settings
from metro_assets.warehouse import connect
from metro_assets_tests.conftest import HISTORY_END

D1, D2, D3 = date(2025, 9, 1), date(2025, 9, 2), date(2025, 9, 3)


def test_leave_last_basket_out_on_a_hand_made_example():
    events = pl.DataFrame({
        "customer_id": [1, 1, 1, 1, 1, 2, 2, 3],
        "day": [D1, D1, D2, D3, D3, D1, D2, D1],
        "product_id": [10, 11, 10, 12, 10, 11, 13, 10],
    })
    encoded = encode(events, vocab=np.array([10, 11, 12, 13]))  # items 1..4
    history, held = split_last_basket(encoded)
    # customer 1 holds out day 3 (items 3 and 1), customer 2 day 2 (item 4); customer 3 bought on one day only
    assert held.sort("customer_id", "item").select("customer_id", "item").rows() == [(1, 1), (1, 3), (2, 4)]
    assert history.height == 5
    # buy-again: customer 1 bought item 1 twice, item 2 once; the fill is popularity (item 1, then 2)
    again = buy_again_top(history, held["customer_id"], k=2)
    assert again.sort("customer_id", "rank").rows() == [(1, 1, 1), (1, 2, 2), (2, 2, 1), (2, 1, 2)]
    # customer 1: item 1 at rank 1 (hit, NDCG 1), item 3 missed -> 0.5 / 0.5; customer 2: item 4 missed -> 0 / 0
    assert ranking_metrics(again, held, k=2) == {"hit_at_k": 0.25, "ndcg_at_k": 0.25, "customers": 2, "targets": 3}
    popular = popularity_top(history, held["customer_id"], k=2)  # items 1 (3 events), 2 (2 events)
    # customer 1: item 1 at rank 1; customer 2: nothing -> (1/2 + 0) / 2
    assert ranking_metrics(popular, held, k=2)["hit_at_k"] == 0.25
    # a target at rank 2 earns 1 / log2(3)
    one = ranking_metrics(pl.DataFrame({"customer_id": [2], "item": [4], "rank": [2]}),
                          pl.DataFrame({"customer_id": [2], "item": [4]}), k=2)
    assert one["hit_at_k"] == 1.0 and one["ndcg_at_k"] == pytest.approx(0.6309, abs=1e-4)


SMALL = dict(epochs=1, dim=16, heads=1, layers=1, max_len=20, validation_customers=300, negatives=64)


def test_same_seed_same_weights_and_nothing_from_the_cutoff_on(tiny_world_file, tmp_path):
    pytest.importorskip("torch")
    from metro_assets.sequence.sasrec import SasrecConfig, from_blobs, log_probabilities
    from metro_assets.sequence.scores import next_purchase_log_prob
    from metro_assets.sequence.training import fit

    cutoff = HISTORY_END - timedelta(days=14)
    config = SasrecConfig(**SMALL)
    with connect(tiny_world_file, read_only=True) as con:
        first, report = fit(con, HISTORY_END, cutoff, config, seed=7)
        again, _ = fit(con, HISTORY_END, cutoff, config, seed=7)
    assert first["weights"] == again["weights"] and first["vocab"] == again["vocab"]
    assert set(report) == {"sasrec", "popularity", "buy_again"} and report["sasrec"]["customers"] >= 50
    # point in time: other purchases from the cutoff on change nothing
    changed = tmp_path / "changed.duckdb"
    shutil.copy(tiny_world_file, changed)
    with connect(changed) as con:
        con.execute("update order_items set product_id = (product_id * 7) % 600 + 1 where day >= ?", [cutoff])
        con.execute("delete from orders where day >= ? and customer_id % 3 = 0", [cutoff])
        later, _ = fit(con, HISTORY_END, cutoff, config, seed=7)
    assert later["weights"] == first["weights"] and later["sasrec_ndcg_at_10"] == first["sasrec_ndcg_at_10"]
    # the stored model, read back, scores requests of day d from purchases before d only
    model = from_blobs(first["weights"], first["vocab"], first["config"])
    day = HISTORY_END - timedelta(days=3)
    with connect(tiny_world_file, read_only=True) as con:
        requests = con.sql("select distinct c.customer_id, o.offer_id, ?::DATE as day from customers c, offers o "
                           "where c.customer_id % 10 = 0", params=[day]).pl()
        scored = next_purchase_log_prob(con, requests, model)
    assert scored.height == requests.height and scored["next_purchase_log_prob"].null_count() < scored.height / 2
    later_gone = tmp_path / "later_gone.duckdb"
    shutil.copy(tiny_world_file, later_gone)
    with connect(later_gone) as con:
        con.execute("delete from order_items where day >= ?", [day])
        con.execute("delete from orders where day >= ?", [day])
        again = next_purchase_log_prob(con, requests, model)
    key = ["customer_id", "offer_id", "day"]
    assert scored.sort(key).equals(again.sort(key))
    # a softmax over every product: the probabilities of one state sum to one
    sequences = np.array([[0] * 17 + [1, 2, 3], [0] * 19 + [4]])
    prior = csr_matrix((2, model.vocab.size + 1), dtype=np.float32)
    rows = np.repeat([0, 1], model.vocab.size)
    items = np.tile(np.arange(1, model.vocab.size + 1), 2)
    p = log_probabilities(model.model, sequences, prior, rows, items)
    assert np.allclose(np.exp(p).reshape(2, -1).sum(axis=1), 1.0, atol=1e-4)


def _run(day):
    return build_defs(load_settings()).get_job_def("sequence").execute_in_process(
        partition_key=day.isoformat(), instance=DagsterInstance.ephemeral(), raise_on_error=False)


def _metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_sequence_job_trains_and_stores_the_figures(tiny_warehouse, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("METRO_SEQUENCE_EPOCHS", "1")
    monkeypatch.setenv("METRO_SEQUENCE_LENGTH", "20")
    monkeypatch.setenv("METRO_TRAIN_WEEKS", "3")  # tiny: the model learns from the 3 weeks before D - 3 weeks
    result = _run(HISTORY_END)
    assert result.success
    meta = _metadata(result)
    before = HISTORY_END - timedelta(weeks=3)
    assert meta["model_version"] == f"{HISTORY_END}-sasrec" and meta["trained_before"] == str(before)
    assert "| buy_again |" in meta["next_purchase"] and meta["seconds_per_epoch"] > 0
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    rows = con.sql("select day, trained_before, sasrec_hit_at_10, buy_again_hit_at_10 from sequence_models").fetchall()
    con.close()
    assert rows == [(HISTORY_END, before, meta["sasrec_hit_at_10"], meta["buy_again_hit_at_10"])]


def test_without_deep_models_the_job_says_so_in_one_line(tiny_warehouse, monkeypatch):
    monkeypatch.setenv("METRO_DEEP", "false")
    result = _run(HISTORY_END)
    assert result.success
    assert _metadata(result)["status"] == "deep models off: METRO_DEEP=false"
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    assert con.sql("select count(*) from sequence_models").fetchall() == [(0,)]
    con.close()


def test_the_core_install_never_imports_torch():
    code = ("import sys, metro_assets.definitions, metro_assets.sequence.training, metro_assets.sequence.metrics; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "METRO_SCALE": "tiny"})
    assert out.stdout.strip() == "False"
