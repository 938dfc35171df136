"""Nearest offers by inner product over unit vectors: FAISS, and the NumPy search it must equal.

An exact ``IndexFlatIP`` (the day's offers are a few hundred; an approximate
index would buy nothing and lose exactness). Ties in similarity break by the
lower offer id in both searches, so they return the same lists.

Examples
--------
>>> import numpy as np
>>> items = np.eye(3, dtype=np.float32)
>>> queries = np.array([[0.1, 0.9, 0.0]], dtype=np.float32)
>>> nearest(queries, items, k=2)[1].tolist()
[[1, 0]]
>>> brute_force(queries, items, k=2)[1].tolist()
[[1, 0]]
"""

from __future__ import annotations

import numpy as np

#: Queries searched at a time (bounds the (queries x k) result and FAISS's temporaries).
QUERIES_PER_BATCH = 65_536
#: FAISS's threads: the machine's two cores (measured in docs/RETRIEVAL.md).
THREADS = 2


def _tie_break(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Within each row: similarity descending, then item index ascending (exact ties only)."""
    order = np.lexsort((ids, -scores), axis=-1) if scores.size else np.zeros_like(ids)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def nearest(queries: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items of largest inner product with each query, through a FAISS flat index.

    Parameters
    ----------
    queries : numpy.ndarray
        (n, d) float32, unit rows.
    items : numpy.ndarray
        (m, d) float32, unit rows.
    k : int
        Neighbours per query (at most m).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        (n, k) similarities (float32) and item indices (int64), best first.
    """
    import faiss  # here: only retrieval needs it

    k = min(k, len(items))
    n, d = queries.shape
    if k == 0 or n == 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    faiss.omp_set_num_threads(THREADS)
    index = faiss.IndexFlatIP(d)
    index.add(np.ascontiguousarray(items, dtype=np.float32))
    scores = np.empty((n, k), np.float32)
    ids = np.empty((n, k), np.int64)
    for s in range(0, n, QUERIES_PER_BATCH):  # a loop over batches of queries, not rows
        e = s + QUERIES_PER_BATCH
        scores[s:e], ids[s:e] = index.search(np.ascontiguousarray(queries[s:e], dtype=np.float32), k)
    return _tie_break(scores, ids)


def brute_force(queries: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same answer as :func:`nearest` by a full NumPy product and sort (the reference in tests)."""
    k = min(k, len(items))
    scores = queries.astype(np.float32) @ items.astype(np.float32).T
    ids = np.broadcast_to(np.arange(len(items)), scores.shape)
    order = np.lexsort((ids, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, 1), order.astype(np.int64)
