"""Each customer's purchase sequence before a day, as arrays a sequence model reads (no torch here).

A sequence element is one product a customer bought on one day (a product
bought twice on a day counts once), in day order. Products of one basket have
no order of their own; they follow a fixed pseudo-random order
(:data:`SHUFFLE`), so the model cannot learn an artefact of product ids.
Items are coded 1..V by product id (0 pads); the vocabulary is what was bought
before the cutoff.

Examples
--------
>>> import polars as pl
>>> from datetime import date
>>> events = pl.DataFrame({"customer_id": [1, 1, 1, 2], "day": [date(2025, 9, 1)] * 2 + [date(2025, 9, 3)] * 2,
...                        "item": [3, 1, 2, 2]})
>>> left_padded(events, max_len=4)["sequence"].to_list()
[[0, 3, 1, 2], [0, 0, 0, 2]]
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


def left_padded(events: pl.DataFrame, max_len: int) -> pl.DataFrame:
    """Each customer's last ``max_len`` items, left-padded with 0: ``customer_id``, ``sequence`` (list), sorted."""
    grouped = events.group_by("customer_id", maintain_order=True).agg(pl.col("item").tail(max_len))
    pad = pl.lit(0, dtype=pl.Int64).repeat_by(max_len - pl.col("item").list.len())
    return grouped.select("customer_id", sequence=pl.concat_list(pad, "item")).sort("customer_id")


def as_matrix(padded: pl.DataFrame, max_len: int) -> np.ndarray:
    """The ``sequence`` column of :func:`left_padded` as an (n, max_len) int64 matrix."""
    if padded.height == 0:
        return np.zeros((0, max_len), dtype=np.int64)
    return np.asarray(padded["sequence"].list.to_array(max_len).to_numpy(), dtype=np.int64)


def training_windows(events: pl.DataFrame, length: int, windows: int) -> np.ndarray:
    """Up to ``windows`` non-overlapping windows of ``length`` items from each customer's newest, left-padded.

    A window of ``length`` items trains ``length - 1`` next-item predictions; a
    customer with a long history gives several windows (the newest first).
    """
    numbered = events.with_columns(
        back=(pl.len().over("customer_id") - 1 - pl.int_range(pl.len()).over("customer_id")))
    numbered = numbered.filter(pl.col("back") < length * windows).with_columns(
        window=pl.col("back") // length)
    grouped = numbered.group_by("customer_id", "window", maintain_order=True).agg(pl.col("item"))
    grouped = grouped.filter(pl.col("item").list.len() >= 2).sort("customer_id", "window")
    pad = pl.lit(0, dtype=pl.Int64).repeat_by(length - pl.col("item").list.len())
    padded = grouped.select(sequence=pl.concat_list(pad, "item"))
    return as_matrix(padded, length)
