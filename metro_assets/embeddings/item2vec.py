"""item2vec: skip-gram word2vec over purchase sequences, with no Dagster inside.

A product is a word. Two kinds of sentences, both from order lines dated
before the training day only (the vectors of day D know nothing of D or later):

* **customer sequences**: the distinct products a customer bought in
  ``[day - days, day)`` (``METRO_EMBEDDING_DAYS``), in the order of their first
  purchase there (tastes below the category: two products the same customers
  buy are near, whatever their baskets);
* **baskets**: the products of one order of the last :data:`BASKET_DAYS` days
  (complements: pasta and sauce). Fewer days than the sequences: at the
  default scale 90 days of baskets are 5.5M more words, and the training time
  grows with the words (measured in docs/RETRIEVAL.md).

gensim's Word2Vec trains with one worker and a fixed seed, and its per-word
initial vectors are seeded through a fixed hash (Python's own ``hash`` of a
string changes with every process), so the same warehouse gives the same
vectors bit for bit.

Examples
--------
>>> import duckdb
>>> from datetime import date
>>> from metro_assets.warehouse import ensure_schema
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> train_item2vec(con, date(2025, 9, 26)) is None  # no purchases before the day: no vectors
True
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.settings import EmbeddingSettings

#: gensim's word2vec settings besides the ones in :class:`EmbeddingSettings` (see docs/RETRIEVAL.md).
WORD2VEC = {
    "sg": 1,            # skip-gram
    "window": 5,        # context words either side
    "negative": 5,      # negative samples per positive
    "min_count": 1,     # rare products keep a vector: rarity is filtered where the vectors are used
    "sample": 1e-5,     # down-sample frequent products hard (milk is in every basket): halves the time (measured)
    "workers": 1,       # one worker: reproducible vectors
    "seed": 7,
}
#: Days of baskets in the corpus (the customer sequences use METRO_EMBEDDING_DAYS).
BASKET_DAYS = 28
#: A customer sequence longer than this is cut (gensim truncates sentences at 10,000 words anyway).
MAX_SEQUENCE = 1_000


@dataclass
class ProductVectors:
    """One version of the product vectors: trained on purchases before ``day``."""

    day: date
    product_id: np.ndarray      # int64, sorted
    vectors: np.ndarray         # float32 (products x dim), as trained
    purchases: np.ndarray       # int64: order lines of each product in the training window
    metadata: dict = field(default_factory=dict)

    def normalised(self) -> np.ndarray:
        """Unit-length rows (a zero row stays zero), float32: inner product = cosine."""
        norm = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return (self.vectors / np.where(norm > 0, norm, 1.0)).astype(np.float32)

    def frame(self) -> pl.DataFrame:
        """The rows of ``product_embeddings``."""
        return pl.DataFrame({
            "day": [self.day] * len(self.product_id),
            "product_id": self.product_id,
            "vector": pl.Series(self.vectors.astype(np.float32), dtype=pl.List(pl.Float32)),
            "purchases": self.purchases.astype(np.int32),
        })


def _fixed_hash(text: str) -> int:
    """A hash that is the same in every process (gensim seeds each word's initial vector with it)."""
    return zlib.crc32(text.encode())


def sentences(con: duckdb.DuckDBPyConnection, day: date, days: int) -> tuple[list[list[str]], dict]:
    """The training sentences of ``day`` (customer sequences, then baskets) and their counts.

    Ordered deterministically (order id, customer id), so training sees the same corpus every time.
    """
    params = {"start": day - timedelta(days=days), "day": day}
    lines = con.sql(
        """
        SELECT o.order_id, o.customer_id, o.order_timestamp, o.day, i.order_item_id, i.product_id
        FROM orders o JOIN order_items i ON i.order_id = o.order_id
        WHERE o.day >= $start AND o.day < $day
        """,
        params=params,
    ).pl()
    if lines.height == 0:
        return [], {"baskets": 0, "sequences": 0, "words": 0}
    words = lines.with_columns(word=pl.col("product_id").cast(pl.Utf8))
    baskets = (
        words.filter(pl.col("day") >= day - timedelta(days=BASKET_DAYS)).sort("order_id", "order_item_id")
        .group_by("order_id", maintain_order=True).agg("word")
        .filter(pl.col("word").list.len() > 1)["word"].to_list()
    )
    sequences = (
        words.sort("customer_id", "order_timestamp", "order_id", "order_item_id")
        .unique(["customer_id", "product_id"], keep="first", maintain_order=True)
        .group_by("customer_id", maintain_order=True).agg(pl.col("word").head(MAX_SEQUENCE))
        .filter(pl.col("word").list.len() > 1)["word"].to_list()
    )
    counts = {"baskets": len(baskets), "sequences": len(sequences),
              "words": int(sum(map(len, baskets)) + sum(map(len, sequences)))}
    return sequences + baskets, counts


def purchase_counts(con: duckdb.DuckDBPyConnection, day: date, days: int) -> pl.DataFrame:
    """Order lines per product in the training window (``product_id``, ``purchases``)."""
    return con.sql(
        """
        SELECT i.product_id, count(*)::BIGINT AS purchases
        FROM orders o JOIN order_items i ON i.order_id = o.order_id
        WHERE o.day >= $start AND o.day < $day GROUP BY ALL
        """,
        params={"start": day - timedelta(days=days), "day": day},
    ).pl()


def train_item2vec(con: duckdb.DuckDBPyConnection, day: date,
                   settings: EmbeddingSettings = EmbeddingSettings()) -> ProductVectors | None:
    """Product vectors trained on the order lines of ``[day - settings.days, day)``; None without any.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The warehouse (reads ``orders`` and ``order_items``).
    day : datetime.date
        The training day: nothing dated on or after it is read.
    settings : EmbeddingSettings
        Vector size, epochs and window of days (``METRO_EMBEDDING_*``).

    Returns
    -------
    ProductVectors or None
        Vectors of every product bought in the window, sorted by product id,
        with training settings, corpus counts, loss and seconds in ``metadata``.
    """
    from gensim.models import Word2Vec  # here: only the embedding step needs gensim

    began = time.perf_counter()
    corpus, counts = sentences(con, day, settings.days)
    if not corpus:
        return None
    read = time.perf_counter() - began
    logging.getLogger("gensim").setLevel(logging.WARNING)
    model = Word2Vec(corpus, vector_size=settings.dim, epochs=settings.epochs, hashfxn=_fixed_hash,
                     compute_loss=True, **WORD2VEC)
    trained = time.perf_counter() - began - read
    keys = np.array(model.wv.index_to_key, dtype=np.int64)
    order = np.argsort(keys)
    counted = purchase_counts(con, day, settings.days)
    product_id = keys[order]
    purchases = (pl.DataFrame({"product_id": product_id})
                 .join(counted, on="product_id", how="left")["purchases"].fill_null(0).to_numpy())
    metadata = {
        "trained_on": f"customer sequences of {day - timedelta(days=settings.days)}..{day - timedelta(days=1)}, "
                      f"baskets of the last {BASKET_DAYS} days",
        "vector_size": settings.dim,
        "epochs": settings.epochs,
        **{k: v for k, v in WORD2VEC.items()},
        **counts,
        "products": int(len(product_id)),
        # gensim's running loss: summed over all epochs, not comparable across corpora of other sizes
        "training_loss": float(model.get_latest_training_loss()),
        "loss_per_word": float(model.get_latest_training_loss()) / max(counts["words"] * settings.epochs, 1),
        "seconds_reading": round(read, 2),
        "seconds_training": round(trained, 2),
    }
    return ProductVectors(day, product_id, model.wv.vectors[order].astype(np.float32), purchases, metadata)
