"""item2vec vectors, the FAISS search, the embedding strategy, retrieval_summary and embedding_affinity (tiny)."""

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from metro_assets.candidates.checks import candidate_checks
from metro_assets.candidates.retrieval import write_candidate_pool
from metro_assets.checking import evaluate_checks
from metro_assets.embeddings.item2vec import train_item2vec
from metro_assets.embeddings.search import brute_force, nearest
from metro_assets.embeddings.vectors import customer_vectors, pair_affinity, stored_vectors
from metro_assets.features import compute
from metro_assets.features.daily import write_features
from metro_assets.ranking.training import training_affinity
from metro_assets.errors import SettingError
from metro_assets.settings import CandidateLimits, EmbeddingSettings, load_settings
from metro_assets.warehouse import replace_partitions
from metro_assets_tests.features.runs import MID_DAY, pool_metadata, run_day

ROOT = Path(__file__).resolve().parents[2]
DAY = MID_DAY  # 2025-09-19: a week of later events exists in the tiny history


@pytest.fixture
def con(tiny_warehouse):
    con = duckdb.connect(str(tiny_warehouse))
    yield con
    con.close()


def _store(con, day=DAY):
    pv = train_item2vec(con, day)
    replace_partitions(con, {"product_embeddings": pv.frame()}, day, day + timedelta(days=1))
    return pv


def _drop_events_from(con, day: date) -> None:
    """Change the future: every order (and its lines) dated ``day`` or later disappears."""
    con.execute("DELETE FROM order_items WHERE order_id IN (SELECT order_id FROM orders WHERE day >= ?)", [day])
    con.execute("DELETE FROM orders WHERE day >= ?", [day])


# --- the search -----------------------------------------------------------------------------------------------

def test_faiss_search_equals_a_brute_force_numpy_search():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(2_000, 16)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = queries.astype(np.float64) @ items.astype(np.float64).T
    for k in (1, 10, 300, 500):  # k above the item count: every item, ranked
        scores, ids = nearest(queries, items, k)
        ref_scores, ref_ids = brute_force(queries, items, k)
        assert ids.shape == ref_ids.shape == (2_000, min(k, 300))
        np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
        # the same neighbours in the same order; float32 sums in another order may swap two items whose
        # similarities differ in the 7th digit, and only those
        np.testing.assert_allclose(np.take_along_axis(exact, ids, 1), np.take_along_axis(exact, ref_ids, 1),
                                   atol=1e-5)
        differ = ids != ref_ids
        assert differ.mean() < 1e-4
        near_tie = np.abs(np.take_along_axis(exact, ids, 1) - np.take_along_axis(exact, ref_ids, 1)) < 1e-5
        assert (near_tie | ~differ).all()
    # exact ties break by the lower item index in both
    twins = np.vstack([items[:1], items[:1], items[1:3]])
    assert nearest(items[:1], twins, 2)[1].tolist() == brute_force(items[:1], twins, 2)[1].tolist() == [[0, 1]]


def test_faiss_search_on_the_tiny_worlds_vectors_equals_brute_force(con):
    pv = _store(con)
    write_features(con, "customer_features", DAY)
    con.execute("CREATE TEMP TABLE req AS SELECT customer_id, day FROM customer_features WHERE day = ?", [DAY])
    keys, cv = customer_vectors(con, "req", pv)
    assert keys.height > 1000
    items = pv.normalised()
    ids, ref = nearest(cv, items, 25)[1], brute_force(cv, items, 25)[1]
    exact = cv.astype(np.float64) @ items.astype(np.float64).T
    assert (ids != ref).mean() < 1e-3  # only near ties (7th digit) may swap
    np.testing.assert_allclose(np.take_along_axis(exact, ids, 1), np.take_along_axis(exact, ref, 1), atol=1e-5)


# --- item2vec ---------------------------------------------------------------------------------------------------

def test_item2vec_vectors_are_reproducible_in_another_process(con, tiny_warehouse):
    pv = train_item2vec(con, DAY)
    again = train_item2vec(con, DAY)
    assert pv.metadata["products"] > 100 and pv.vectors.shape[1] == EmbeddingSettings().dim
    np.testing.assert_array_equal(pv.vectors, again.vectors)
    # another process has another string-hash seed (PYTHONHASHSEED): gensim's per-word seeds must not use it
    con.close()
    out = tiny_warehouse.parent / "vectors.npy"
    code = ("import duckdb, numpy as np, datetime; from metro_assets.embeddings.item2vec import train_item2vec; "
            f"c = duckdb.connect({str(tiny_warehouse)!r}, read_only=True); "
            f"np.save({str(out)!r}, train_item2vec(c, datetime.date.fromisoformat({DAY.isoformat()!r})).vectors)")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    np.testing.assert_array_equal(np.load(out), pv.vectors)


def test_vectors_for_a_day_use_nothing_from_that_day_on(con):
    pv = train_item2vec(con, DAY)
    con.execute("CREATE TEMP TABLE req AS SELECT customer_id, offer_id, day FROM "
                "(SELECT DISTINCT customer_id FROM orders WHERE day < ? LIMIT 300), "
                "(SELECT offer_id, ?::DATE AS day FROM offers LIMIT 20)", [DAY, DAY])
    keys, cv = customer_vectors(con, "req", pv)
    affinity = pair_affinity(con, "req", pv).sort("customer_id", "offer_id")
    assert affinity.height > 1000 and affinity["embedding_affinity"].abs().max() <= 1.0 + 1e-6
    _drop_events_from(con, DAY)
    later = train_item2vec(con, DAY)
    np.testing.assert_array_equal(later.vectors, pv.vectors)
    keys2, cv2 = customer_vectors(con, "req", later)
    assert_frame_equal(keys2, keys)
    np.testing.assert_array_equal(cv2, cv)
    assert_frame_equal(pair_affinity(con, "req", later).sort("customer_id", "offer_id"), affinity)
    # and the events before the day do count: dropping them changes the vectors
    _drop_events_from(con, DAY - timedelta(days=3))
    assert not np.array_equal(train_item2vec(con, DAY).vectors, pv.vectors)


def test_stored_vectors_are_the_newest_version_on_or_before_the_day(con):
    assert stored_vectors(con, DAY) is None
    first = _store(con, DAY - timedelta(days=7))
    second = _store(con, DAY)
    assert stored_vectors(con, DAY - timedelta(days=1)).day == first.day
    got = stored_vectors(con, DAY + timedelta(days=3))
    assert got.day == second.day
    np.testing.assert_array_equal(got.vectors, second.vectors)  # FLOAT[] round trip, bit for bit


# --- the embedding strategy and retrieval_summary -------------------------------------------------------------------

def test_embedding_strategy_proposes_each_customers_nearest_eligible_offers(con):
    pv = _store(con)
    for table in ("customer_features", "offer_features"):
        write_features(con, table, DAY)
    limits = CandidateLimits(category=3, segment=2, repeat=2, margin=1, embedding=5, max_candidates=12)
    summary = write_candidate_pool(con, DAY, limits)
    assert summary["embedding_search"].startswith("on: vectors trained 2025-09-19")
    assert summary["strategy_shares"]["embedding"] > 0.1
    outcomes = evaluate_checks(con, candidate_checks(limits), DAY, DAY + timedelta(days=1))
    assert all(o.passed for o in outcomes), [o.check.name for o in outcomes if not o.passed]
    # one customer by brute force: their 5 nearest eligible products (by the same vectors) are in the pool
    customer, store, segment = con.execute(
        "SELECT customer_id, home_store_id, segment FROM customer_features WHERE day = ? AND recency_days IS NOT "
        "NULL ORDER BY customer_id LIMIT 1", [DAY]).fetchall()[0]
    con.execute("CREATE TEMP TABLE one AS SELECT ?::BIGINT AS customer_id, ?::DATE AS day", [customer, DAY])
    _, cv = customer_vectors(con, "one", pv)
    eligible = con.execute("SELECT DISTINCT product_id FROM eligible_offers WHERE day = ? AND home_store_id = ? "
                           "AND segment = ? ORDER BY 1", [DAY, store, segment]).fetchall()
    products = np.array([r[0] for r in eligible], dtype=np.int64)
    products = products[np.isin(products, pv.product_id)]
    _, idx = brute_force(cv, pv.normalised()[np.searchsorted(pv.product_id, products)], len(products))
    pool = con.execute("SELECT o.product_id, c.strategy FROM candidate_pool c JOIN offers o USING (offer_id) "
                       "WHERE c.day = ? AND c.customer_id = ?", [DAY, customer]).fetchall()
    in_pool = {p for p, _ in pool}
    nearest_products = products[idx[0]]
    # the strategy takes offers nearest first (an offer already claimed by category affinity stays its own)
    assert set(nearest_products[:3]) <= in_pool
    embedded = {p for p, s in pool if s == "embedding"}
    assert embedded and embedded <= set(nearest_products[:5 + len(in_pool)])


def test_retrieval_summary_leaves_each_strategy_out_at_equal_pool_size(tiny_warehouse, monkeypatch):
    con = duckdb.connect(str(tiny_warehouse))
    _store(con)
    con.close()
    for name, value in {"CATEGORY": 4, "SEGMENT": 3, "REPEAT": 2, "MARGIN": 1, "EMBEDDING": 4}.items():
        monkeypatch.setenv(f"METRO_CANDIDATES_{name}", str(value))
    monkeypatch.setenv("METRO_MAX_CANDIDATES", "10")
    meta = pool_metadata(run_day(DAY))
    con = duckdb.connect(str(tiny_warehouse), read_only=True)
    rows = con.sql("SELECT * FROM retrieval_summary WHERE day = $d", params={"d": DAY}).pl()
    pool_pairs = con.execute("SELECT count(*) FROM candidate_pool WHERE day = ?", [DAY]).fetchall()[0][0]
    con.close()
    sets = dict(zip(rows["strategy_set"], rows.iter_rows(named=True)))
    assert {"all", "without embedding", "without category_affinity", "eligible"} <= set(sets)
    # only the customers with a label are built
    assert 0 < sets["all"]["pairs"] < pool_pairs == meta["pairs"]
    for name, row in sets.items():
        if name.startswith("without"):
            assert row["pairs"] == sets["all"]["pairs"], name  # equal pool size
            assert name.removeprefix("without ") not in row["strategies"]
    assert sets["all"]["redemption_recall"] == pytest.approx(meta["retrieval_recall"])
    assert sets["eligible"]["pairs"] > sets["all"]["pairs"]
    for row in sets.values():  # nothing finds more than every eligible offer does
        assert row["purchase_recall"] <= sets["eligible"]["purchase_recall"]
        assert row["redemptions"] > 0 and row["purchases"] > row["redemptions"] and row["label_days"] == 7
    assert len({row["purchases_found"] for row in sets.values()}) > 1  # leaving strategies out matters
    assert "without embedding" in meta["strategy_recall"]


def test_no_later_days_no_summary_rows(con):
    last = con.execute("SELECT max(day) FROM orders").fetchall()[0][0] + timedelta(days=1)
    for table in ("customer_features", "offer_features"):
        write_features(con, table, last)
    summary = write_candidate_pool(con, last, CandidateLimits())
    assert summary["strategy_recall"] is None and summary["embedding_search"].startswith("off")
    assert con.execute("SELECT count(*) FROM retrieval_summary").fetchall()[0][0] == 0


# --- embedding_affinity -----------------------------------------------------------------------------------------

def test_embedding_affinity_stored_equals_what_training_computes_with_the_same_vectors(con):
    pv = _store(con)
    for table in ("customer_features", "offer_features"):
        write_features(con, table, DAY)
    write_candidate_pool(con, DAY, CandidateLimits())
    write_features(con, "interaction_features", DAY, EmbeddingSettings(feature=True))
    stored = con.sql("SELECT customer_id, offer_id, day, embedding_affinity FROM interaction_features").pl()
    assert stored["embedding_affinity"].null_count() < 0.2 * stored.height
    con.execute("CREATE TEMP TABLE pairs AS SELECT customer_id, offer_id, day FROM candidate_pool")
    con.register("affinity_frame", pair_affinity(con, "pairs", pv).to_arrow())
    con.execute("CREATE TEMP TABLE aff AS SELECT * FROM affinity_frame")
    computed = compute.feature_matrix(con, "pairs", affinity="aff").select(stored.columns)
    keys = ["customer_id", "offer_id", "day"]
    assert_frame_equal(computed.sort(keys), stored.sort(keys), check_exact=True)
    # with the feature off (the default) the column is NULL
    write_features(con, "interaction_features", DAY)
    assert con.execute("SELECT count(embedding_affinity) FROM interaction_features").fetchall()[0][0] == 0


def test_training_rows_affinity_uses_vectors_trained_before_the_window(con):
    before = DAY - timedelta(days=14)
    con.execute("CREATE TEMP TABLE req AS SELECT customer_id, offer_id, day FROM "
                "(SELECT DISTINCT customer_id FROM orders WHERE day < ? LIMIT 300), "
                "(SELECT offer_id FROM offers LIMIT 10), "
                "(SELECT unnest([?::DATE, ?::DATE]) AS day)", [before, before + timedelta(days=3), DAY])
    first, note = training_affinity(con, "req", before)
    assert "before 2025-09-05" in note and first.height > 1000
    # a row of day d moves only with purchases before d: events from the last row day on change nothing
    _drop_events_from(con, DAY)
    again, _ = training_affinity(con, "req", before)
    keys = ["customer_id", "offer_id", "day"]
    assert_frame_equal(again.sort(keys), first.sort(keys))
    # events between the window start and a row's day reach that row only through its customer vector
    _drop_events_from(con, before + timedelta(days=3))
    moved, _ = training_affinity(con, "req", before)
    early = pl.col("day") == before + timedelta(days=3)
    assert_frame_equal(moved.filter(early).sort(keys), first.filter(early).sort(keys))


@pytest.mark.parametrize("name, value", [("METRO_CANDIDATES_EMBEDDING", "-1"), ("METRO_CANDIDATES_EMBEDDING", "x"),
                                         ("METRO_EMBEDDING_DIM", "0"), ("METRO_EMBEDDING_EPOCHS", "1000"),
                                         ("METRO_EMBEDDING_FEATURE", "maybe"), ("METRO_EMBEDDING_HALF_LIFE", "0")])
def test_bad_embedding_settings_stop_with_one_line_naming_them(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=name) as err:
        load_settings()
    assert "\n" not in str(err.value)


def test_embedding_settings_defaults_and_values(monkeypatch):
    settings = load_settings()
    assert settings.candidates.embedding == 0 and settings.embedding.feature is False  # off: docs/RETRIEVAL.md
    monkeypatch.setenv("METRO_CANDIDATES_EMBEDDING", "25")
    monkeypatch.setenv("METRO_EMBEDDING_FEATURE", "true")
    monkeypatch.setenv("METRO_EMBEDDING_DIM", "16")
    settings = load_settings()
    assert (settings.candidates.embedding, settings.embedding.feature, settings.embedding.dim) == (25, True, 16)
