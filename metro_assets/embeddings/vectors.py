"""Stored product vectors and the customer vectors built from them, with no Dagster inside.

Point in time: the product vectors used for day D are the newest version
trained on or before D (trained on purchases before its training day), and a
customer's vector for D averages the vectors of the products they bought in
``[D - days, D)``, each purchase weighted by ``0.5 ** (age / half_life)``.

Examples
--------
>>> import duckdb
>>> from datetime import date
>>> from metro_assets.warehouse import ensure_schema
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> stored_vectors(con, date(2025, 9, 26)) is None  # nothing trained yet
True
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import polars as pl
from scipy import sparse

from metro_assets.embeddings.item2vec import ProductVectors
from metro_assets.settings import EmbeddingSettings

#: Pairs whose affinity is computed at a time (bounds the gathered vectors' memory: 1M x 32 x 4 B x 2).
PAIRS_PER_CHUNK = 1_000_000


def stored_vectors(con: duckdb.DuckDBPyConnection, day: date) -> ProductVectors | None:
    """The newest ``product_embeddings`` version trained on or before ``day``, or None."""
    newest = con.execute("SELECT max(day) FROM product_embeddings WHERE day <= ?", [day]).fetchall()[0][0]
    if newest is None:
        return None
    rows = con.sql("SELECT product_id, vector, purchases FROM product_embeddings WHERE day = $day "
                   "ORDER BY product_id", params={"day": newest}).pl()
    if rows.height == 0:
        return None
    vectors = np.stack(rows["vector"].to_numpy()).astype(np.float32) if rows.height else None
    return ProductVectors(newest, rows["product_id"].to_numpy().astype(np.int64), vectors,
                          rows["purchases"].to_numpy().astype(np.int64))


def _rows(pv: ProductVectors, product_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row in ``pv``, found) for each product id."""
    i = np.minimum(np.searchsorted(pv.product_id, product_id), len(pv.product_id) - 1)
    return i, pv.product_id[i] == product_id


def customer_vectors(con: duckdb.DuckDBPyConnection, requests: str, pv: ProductVectors,
                     settings: EmbeddingSettings = EmbeddingSettings()) -> tuple[pl.DataFrame, np.ndarray]:
    """Unit-length customer vectors for each distinct (customer_id, day) of ``requests``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The warehouse.
    requests : str
        A table or view with ``customer_id`` and ``day`` columns.
    pv : ProductVectors
        Product vectors trained on or before every requested day.
    settings : EmbeddingSettings
        ``days`` (purchases looked at) and ``half_life`` (their recency weight).

    Returns
    -------
    (polars.DataFrame, numpy.ndarray)
        ``customer_id``, ``day`` of the requests with at least one purchase of
        a product that has a vector, sorted, and their vectors (same order,
        float32, unit length).
    """
    # integer counts per purchase age, weighted in NumPy in a fixed order: a parallel float sum in SQL
    # would add in whatever order the threads meet the rows, and the vectors would move in the last bits
    lines = con.sql(
        f"""
        WITH req AS (SELECT DISTINCT customer_id, day FROM {requests})
        SELECT r.customer_id, r.day, i.product_id, (r.day - o.day)::INTEGER AS age, count(*)::INTEGER AS n
        FROM req r
        JOIN orders o ON o.customer_id = r.customer_id AND o.day < r.day AND o.day >= r.day - $days
        JOIN order_items i ON i.order_id = o.order_id
        GROUP BY ALL
        """,
        params={"days": settings.days},
    ).pl()
    row, found = _rows(pv, lines["product_id"].to_numpy())
    lines = lines.with_columns(_row=pl.Series(row)).filter(pl.Series(found))
    keys = lines.select("customer_id", "day").unique().sort("customer_id", "day")
    if keys.height == 0:
        return keys, np.zeros((0, pv.vectors.shape[1]), dtype=np.float32)
    lines = lines.join(keys.with_row_index("_key"), on=["customer_id", "day"]).sort("_key", "_row", "age")
    weight = lines["n"].to_numpy() * np.power(0.5, lines["age"].to_numpy() / settings.half_life)
    m = sparse.coo_matrix((weight, (lines["_key"].to_numpy(), lines["_row"].to_numpy())),
                          shape=(keys.height, len(pv.product_id))).tocsr()
    c = np.asarray(m @ pv.normalised().astype(np.float64))
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    return keys, (c / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def pair_affinity(con: duckdb.DuckDBPyConnection, requests: str, pv: ProductVectors | None,
                  settings: EmbeddingSettings = EmbeddingSettings()) -> pl.DataFrame:
    """``embedding_affinity`` of each (customer_id, offer_id, day) of ``requests``.

    The cosine of the customer's vector for the day and the offer's product
    vector; pairs without either vector are absent (the feature is NULL).
    """
    empty = pl.DataFrame(schema={"customer_id": pl.Int64, "offer_id": pl.Int64, "day": pl.Date,
                                 "embedding_affinity": pl.Float64})
    if pv is None:
        return empty
    keys, cv = customer_vectors(con, requests, pv, settings)
    if keys.height == 0:
        return empty
    pairs = con.sql(f"SELECT DISTINCT r.customer_id, r.offer_id, r.day, o.product_id FROM {requests} r "
                    "JOIN offers o ON o.offer_id = r.offer_id").pl()
    pairs = pairs.join(keys.with_row_index("_customer"), on=["customer_id", "day"])
    row, found = _rows(pv, pairs["product_id"].to_numpy())
    pairs = pairs.with_columns(_product=pl.Series(row)).filter(pl.Series(found))
    pn = pv.normalised()
    ci, pi = pairs["_customer"].to_numpy(), pairs["_product"].to_numpy()
    out = np.empty(pairs.height, dtype=np.float64)
    for s in range(0, pairs.height, PAIRS_PER_CHUNK):  # a loop over chunks of a million pairs, not rows
        e = s + PAIRS_PER_CHUNK
        out[s:e] = np.einsum("ij,ij->i", cv[ci[s:e]], pn[pi[s:e]], dtype=np.float64)
    return pairs.select("customer_id", "offer_id", "day").with_columns(
        embedding_affinity=pl.Series(np.round(out, 6)))
