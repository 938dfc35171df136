"""The ``embedding`` candidate strategy's search, with no Dagster inside.

For day D: the newest product vectors trained on or before D, each warm
customer's vector from their purchases before D, and a FAISS inner-product
search over the unit vectors of the products of D's eligible offers. The
neighbours land in the temp table ``embedding_neighbours`` (customer_id, day,
product_id, similarity_rank); ``candidates/sql/candidate_picks.sql`` keeps the
ones eligible for the customer's store and segment, nearest first.

Examples
--------
>>> import duckdb
>>> from datetime import date
>>> from metro_assets.warehouse import ensure_schema
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> _ = con.execute("CREATE TEMP TABLE eligible_offers (day DATE, product_id BIGINT)")
>>> prepare_embedding_neighbours(con, [date(2025, 9, 26)], limit=20)["embedding_search"]
'off: no product_embeddings trained on or before 2025-09-26'
"""

from __future__ import annotations

import time
from datetime import date

import duckdb
import numpy as np
import polars as pl

from metro_assets.embeddings.search import nearest
from metro_assets.embeddings.vectors import customer_vectors, stored_vectors
from metro_assets.settings import EmbeddingSettings

#: Neighbours searched per customer, as a multiple of the quota: a customer's store and segment make some of
#: the day's products ineligible, and the search runs over all of them (one index for the day).
SEARCH_SLACK = 3
_EMPTY = pl.DataFrame(schema={"customer_id": pl.Int64, "day": pl.Date, "product_id": pl.Int64,
                              "similarity_rank": pl.Int32})


def _register(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> None:
    con.register("embedding_neighbours_frame", frame.to_arrow())  # registered: replacement scans miss wrapped connections
    con.execute("CREATE OR REPLACE TEMP TABLE embedding_neighbours AS SELECT * FROM embedding_neighbours_frame")
    con.unregister("embedding_neighbours_frame")


def prepare_embedding_neighbours(con: duckdb.DuckDBPyConnection, days: list[date], limit: int,
                                 settings: EmbeddingSettings = EmbeddingSettings()) -> dict:
    """Fill the temp table ``embedding_neighbours`` for ``days``; returns what happened (the last day's notes).

    Needs the temp table ``eligible_offers`` and the ``customer_features`` of
    those days. With ``limit`` 0 or no vectors trained on or before a day,
    that day has no rows and the note says why.
    """
    frames, notes = [], {"embedding_search": "off: no day"}
    for day in days:  # one index and one search per day (a pool is built a day at a time)
        frame, notes = _day_neighbours(con, day, limit, settings)
        frames.append(frame)
    _register(con, pl.concat(frames) if frames else _EMPTY)
    return notes


def _day_neighbours(con: duckdb.DuckDBPyConnection, day: date, limit: int,
                    settings: EmbeddingSettings) -> tuple[pl.DataFrame, dict]:
    frame = _EMPTY
    if limit <= 0:
        return frame, {"embedding_search": "off: METRO_CANDIDATES_EMBEDDING=0"}
    pv = stored_vectors(con, day)
    if pv is None:
        return frame, {"embedding_search": f"off: no product_embeddings trained on or before {day}"}
    began = time.perf_counter()
    products = np.array(sorted(r[0] for r in con.execute(
        "SELECT DISTINCT product_id FROM eligible_offers WHERE day = ?", [day]).fetchall()), dtype=np.int64)
    i = np.minimum(np.searchsorted(pv.product_id, products), max(len(pv.product_id) - 1, 0))
    products = products[pv.product_id[i] == products]  # a product never bought in the window has no vector
    con.execute("CREATE OR REPLACE TEMP TABLE embedding_requests AS SELECT customer_id, day FROM customer_features "
                "WHERE day = ? AND recency_days IS NOT NULL", [day])
    try:
        keys, cv = customer_vectors(con, "embedding_requests", pv, settings)
    finally:
        con.execute("DROP TABLE IF EXISTS embedding_requests")
    vectors_done = time.perf_counter()
    k = min(len(products), SEARCH_SLACK * limit)
    if k and keys.height:
        _, idx = nearest(cv, pv.normalised()[np.searchsorted(pv.product_id, products)], k)
        frame = pl.DataFrame({
            "customer_id": np.repeat(keys["customer_id"].to_numpy(), k),
            "day": np.repeat(keys["day"].to_numpy(), k),
            "product_id": products[idx.ravel()],
            "similarity_rank": np.tile(np.arange(1, k + 1, dtype=np.int32), keys.height),
        })
    searched = time.perf_counter()
    return frame, {
        "embedding_search": f"on: vectors trained {pv.day}, {len(products)} products indexed, "
                            f"{keys.height} customers, {k} neighbours each",
        "embedding_seconds_customer_vectors": round(vectors_done - began, 2),
        "embedding_seconds_search": round(searched - vectors_done, 2),
    }
