"""Each customer's purchase sequence before a day, as arrays a sequence model reads (no torch here).

A sequence element is one product a customer bought on one day (a product
bought twice on a day counts once), in day order. Products of one basket have
no order of their own; they follow a fixed pseudo-random order
(:data:`SHUFFLE`), so the model cannot learn an artefact of product ids.
Items are coded 1..V by product id (0 pads); the vocabulary is what was bought
before the cutoff.

Examples
--------
>>> items = np.array([3, 1, 3, 2, 2])  # customer A: rows 0-3, customer B: row 4
>>> matrix, prior = windows_ending(items, first=np.array([0, 4]), end=np.array([4, 5]), length=2, n_items=3)
>>> matrix.tolist()  # the newest 2 items of each, left-padded
[[3, 2], [0, 2]]
>>> prior.toarray().tolist()  # A bought items 3 and 1 before its window
[[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import polars as pl

#: Within a day, items follow (product_id * SHUFFLE) mod 2^31: a fixed order unrelated to the id's meaning.
SHUFFLE = 2_654_435_761


def purchase_events(con: duckdb.DuckDBPyConnection, before: date, since: date | None = None,
                    customers: str | None = None) -> pl.DataFrame:
    """Distinct (customer_id, day, product_id) of order lines dated in [since, before), in sequence order.

    ``customers``, when given, is a relation with a ``customer_id`` column: only those customers are read.
    """
    where = "o.day < $before" + (" AND o.day >= $since" if since else "")
    if customers:
        where += f" AND o.customer_id IN (SELECT customer_id FROM {customers})"
    sql = f"""
        SELECT DISTINCT o.customer_id, o.day, i.product_id
        FROM orders o JOIN order_items i ON i.order_id = o.order_id
        WHERE {where}
    """
    params = {"before": before, **({"since": since} if since else {})}
    return (con.sql(sql, params=params).pl()
            .sort("customer_id", "day", (pl.col("product_id") * SHUFFLE) % (1 << 31)))


def vocabulary(events: pl.DataFrame) -> np.ndarray:
    """The product ids the model knows, sorted: item i (1..V) is ``vocab[i - 1]``."""
    return np.sort(events["product_id"].unique().to_numpy())


def encode(events: pl.DataFrame, vocab: np.ndarray) -> pl.DataFrame:
    """``events`` with ``item`` (1..V, 0 for a product outside ``vocab``), order kept; unknown products dropped."""
    codes = pl.DataFrame({"product_id": vocab, "item": np.arange(1, len(vocab) + 1, dtype=np.int64)})
    return events.join(codes, on="product_id", how="inner", maintain_order="left")


def split_last_basket(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Leave-last-basket-out: (every event before each customer's last day, the last day's items).

    Only customers with purchases on two days or more have a held-out basket; the
    others' events all stay in the first frame.
    """
    last = events.group_by("customer_id").agg(last_day=pl.col("day").max(), days=pl.col("day").n_unique())
    marked = events.join(last, on="customer_id", maintain_order="left")
    held = (pl.col("day") == pl.col("last_day")) & (pl.col("days") > 1)
    keep = ["customer_id", "day", "item"] + (["product_id"] if "product_id" in events.columns else [])
    return marked.filter(~held).select(keep), marked.filter(held).select(keep)


def windows_ending(items: np.ndarray, first: np.ndarray, end: np.ndarray, length: int, n_items: int):
    """Windows of ``length`` items ending before positions ``end``, and the counts of what came before them.

    ``items`` holds every customer's events one after another (sequence order);
    a window's customer starts at ``first``. Returns the (n, length) matrix,
    left-padded with 0, and a sparse (n, n_items + 1) matrix of how often each
    item was bought in the customer's history *before* the window
    ([first, end - length)), so the repeat term sees the whole history, as
    buy-again does, while attention reads the newest ``length`` items.
    """
    from scipy.sparse import csr_matrix

    first, end = np.asarray(first, dtype=np.int64), np.asarray(end, dtype=np.int64)
    index = end[:, None] - length + np.arange(length)[None, :]
    matrix = np.where(index >= first[:, None], items[np.clip(index, 0, None)], 0).astype(np.int64)
    stop = np.maximum(first, end - length)
    counts = stop - first
    rows = np.repeat(np.arange(len(first)), counts)
    # positions first..stop-1 of each row, without a Python loop: a running index reset per row
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = items[np.repeat(first, counts) + offsets]
    prior = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(first), n_items + 1))
    prior.sum_duplicates()
    return matrix, prior


def positions(events: pl.DataFrame) -> pl.DataFrame:
    """``events`` (sequence order) with ``pos`` (global row) and ``first`` (the customer's first row)."""
    numbered = events.with_columns(pos=pl.int_range(pl.len(), dtype=pl.Int64))
    return numbered.with_columns(first=pl.col("pos").min().over("customer_id"))


def newest_windows(events: pl.DataFrame, length: int, n_items: int, windows: int = 1, day_ends: bool = False):
    """Each customer's newest ``windows`` non-overlapping windows of ``length`` items (training, evaluation).

    Returns (customer ids, matrix, prior counts) as :func:`windows_ending`; windows with fewer than 2 items
    are dropped when ``windows`` > 1. With ``day_ends``, a fourth value: a boolean matrix aligned with the
    items, true where the item is the customer's last of its day (the next item starts a new basket).
    """
    numbered = positions(events)
    last = numbered.group_by("customer_id").agg(first=pl.col("first").first(), end=pl.col("pos").max() + 1,
                                                n=pl.len()).sort("customer_id")
    w = pl.DataFrame({"w": np.arange(windows, dtype=np.int64)})
    spans = last.join(w, how="cross").with_columns(end=pl.col("end") - pl.col("w") * length)
    spans = spans.filter((pl.col("end") - pl.col("first") >= (2 if windows > 1 else 1))).sort("customer_id", "w")
    matrix, prior = windows_ending(numbered["item"].to_numpy(), spans["first"].to_numpy(), spans["end"].to_numpy(),
                                   length, n_items)
    if not day_ends:
        return spans["customer_id"].to_numpy(), matrix, prior
    ends = numbered.select(e=(pl.col("day") != pl.col("day").shift(-1).over("customer_id")).fill_null(True))
    flags, _ = windows_ending(ends["e"].to_numpy().astype(np.int64), spans["first"].to_numpy(),
                              spans["end"].to_numpy(), length, 1)
    return spans["customer_id"].to_numpy(), matrix, prior, flags.astype(bool)
