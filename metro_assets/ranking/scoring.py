"""Scoring a day's candidate pool and keeping each customer's top 10.

Scoring day D reads D's feature tables (``customer_features``,
``offer_features``, ``interaction_features``), never the raw tables: the
graph's edges are what scoring reads, and re-materializing a feature
partition changes what is scored. A missing feature partition stops scoring
with one line naming the table and day.

Examples
--------
>>> import polars as pl
>>> scored = pl.DataFrame({"customer_id": [1, 1, 1], "offer_id": [9, 3, 5], "score": [0.2, 0.2, 0.1],
...                        "product_id": [1, 2, 3], "category": ["a", "b", "c"]})
>>> top_k(scored, 2)["offer_id"].to_list()  # ties break by offer_id
[3, 9]
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from metro_assets.errors import DataError
from metro_assets.features.compute import FEATURE_TABLES, MODEL_FEATURES, stored_matrix
from metro_assets.ranking import models
from metro_assets.ranking.training import as_matrix
from metro_assets.settings import RankerSettings

PAIRS_PER_BATCH = 1_000_000  # bounds memory: one batch's features and the model's temporaries at a time


def selected_model(con: duckdb.DuckDBPyConnection, day: date, kind: str | None = None) -> tuple[str, models.StoredModel]:
    """The newest model trained on or before ``day`` (the selected one, or the given kind)."""
    rows = con.execute(
        "select model_version, kind, model, features, negative_sampling_rate, importances from model_versions "
        "where day <= $day and (case when $kind is null then selected else kind = $kind end) "
        "order by day desc limit 1",
        {"day": day, "kind": kind},
    ).fetchall()
    if not rows:
        raise DataError(f"no ranker_model trained on or before {day}"
                        + (f" of kind {kind}" if kind else "") + ": run the retrain job for that day or earlier")
    version, kind, blob, features, rate, _ = rows[0]
    return version, models.StoredModel(kind, blob, list(features), rate, {})


#: Interaction features that are never NULL when written (counts; 0 for none).
NEVER_NULL = ("product_purchase_days", "offer_shown_28d", "category_shown_28d")


def _check_features(frame: pl.DataFrame, day: date, features: list[str] = ()) -> None:
    """Raise a one-line DataError when a pair of the pool has no row in a feature table of ``day``, or when a
    feature the model reads that is never NULL is NULL throughout (a partition written before the column existed).
    """
    for table in FEATURE_TABLES:
        missing = int(frame[f"missing_{table}"].sum())
        if not missing:
            continue
        if missing == frame.height:
            raise DataError(f"{table} has no partition {day} for the candidate pool's pairs: "
                            f"materialize {table} for {day} before scoring it")
        first = frame.filter(pl.col(f"missing_{table}")).row(0, named=True)
        raise DataError(f"{table} {day} lacks {missing} of the candidate pool's {frame.height} pairs (e.g. customer "
                        f"{first['customer_id']}, offer {first['offer_id']}): re-materialize {table} for {day}")
    for column in NEVER_NULL:  # checked once every pair has its rows
        if column in features and column in frame.columns and frame[column].null_count() == frame.height > 0:
            raise DataError(f"interaction_features {day} has no {column} (written by an older version): "
                            f"re-materialize interaction_features for {day} before scoring it")


def score_pool(con: duckdb.DuckDBPyConnection, day: date, model: models.StoredModel,
               extra: dict | None = None) -> pl.DataFrame:
    """Score every pair of the day's candidate pool with ``model``, in batches of customers.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The warehouse.
    day : datetime.date
        The run date: its ``candidate_pool`` and feature-table partitions are read.
    model : StoredModel
        The model (see :func:`selected_model`).
    extra : dict, optional
        More predictors on the same feature matrix, ``{column: loaded}``, each
        with ``features`` and ``predict(X)`` (e.g. an uplift learner): one pass
        over the features gives every column.

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``offer_id``, ``strategy``, ``score`` (and the
        ``extra`` columns): one row per pool pair.

    Raises
    ------
    DataError
        A feature table has no partition for ``day`` or misses pairs of the pool.
    """
    loaded = models.load(model)
    pairs = con.execute("select count(*) from candidate_pool where day = ?", [day]).fetchall()[0][0]
    batches = max(1, -(-pairs // PAIRS_PER_BATCH))
    out = []
    try:
        for b in range(batches):  # a loop over batches of ~2M pairs, not rows
            con.execute(
                "create or replace temp table scoring_requests as select customer_id, offer_id, day, strategy "
                f"from candidate_pool where day = ? and customer_id % {batches} = {b}", [day])
            # ids: the offer's product_id too, for the kinds that embed it (wide_deep)
            frame = stored_matrix(con, "scoring_requests", day, carry=("strategy",), ids=True)
            _check_features(frame, day, model.features or MODEL_FEATURES)
            # a fixed row order: the model's arithmetic (BLAS blocks) may round a row differently by position
            frame = frame.sort("customer_id", "offer_id")
            more = {name: pl.Series(m.predict(as_matrix(frame, m.features))) for name, m in (extra or {}).items()}
            X = as_matrix(frame, model.features if model.features else MODEL_FEATURES)
            # strategy rebuilt (through a categorical): the read's strings are views into its Arrow
            # buffers, and keeping them kept every batch's whole feature matrix alive (~0.3 GB per 1M pairs)
            keys = frame.select("customer_id", "offer_id", pl.col("strategy").cast(pl.Categorical).cast(pl.Utf8))
            del frame  # not held while the model runs: prediction's temporaries are the step's memory peak
            out.append(keys.with_columns(score=pl.Series(loaded.predict(X)), **more))
            del X
    finally:
        con.execute("drop table if exists scoring_requests")
    return pl.concat(out) if out else pl.DataFrame(
        schema={"customer_id": pl.Int64, "offer_id": pl.Int64, "strategy": pl.Utf8, "score": pl.Float64,
                **{name: pl.Float64 for name in (extra or {})}})


MAX_PER_CATEGORY = RankerSettings.max_per_category  # METRO_MAX_PER_CATEGORY's default


def offer_items(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """``offer_id``, ``product_id``, ``category`` of every offer: what :func:`top_k`'s rules look at."""
    return con.sql("select o.offer_id, o.product_id, p.category from offers o "
                   "join products p using (product_id)").pl().unique("offer_id")


def top_k(scored: pl.DataFrame, k: int = 10, max_per_category: int | None = MAX_PER_CATEGORY,
          items: pl.DataFrame | None = None, score: str = "score") -> pl.DataFrame:
    """Each customer's ``k`` best offers by score, at most one per product and ``max_per_category`` per category.

    The one selection rule of the project: serving (``recommendations``),
    drift's served scores and every policy of the offline evaluation use it.
    It is the greedy pass down each customer's list (best score first; ties:
    lower offer_id first) that skips an offer whose product is already taken
    or whose category is full. The constraints form a laminar matroid (product
    inside category inside the whole list), so for an additive value this
    greedy list is also the best constrained one: the oracle stays an oracle.

    Parameters
    ----------
    scored : polars.DataFrame
        ``customer_id``, ``offer_id``, the ``score`` column and any other
        columns (kept); ``product_id`` and ``category`` too, unless ``items`` is given.
    k : int
        Offers per customer.
    max_per_category : int or None
        Offers of one category per customer; None: no limit.
    items : polars.DataFrame, optional
        ``offer_id``, ``product_id``, ``category`` (see :func:`offer_items`),
        joined when ``scored`` lacks them; offers missing there count as their
        own product and category.
    score : str
        The column to rank by (higher first).

    Returns
    -------
    polars.DataFrame
        ``scored``'s columns plus ``rank`` (1..n, n <= k), best first.

    Examples
    --------
    >>> import polars as pl
    >>> scored = pl.DataFrame({"customer_id": [1] * 5, "offer_id": [1, 2, 3, 4, 5],
    ...                        "product_id": [10, 10, 11, 12, 13], "category": ["a", "a", "a", "a", "b"],
    ...                        "score": [0.9, 0.8, 0.7, 0.6, 0.1]})
    >>> top_k(scored, 3, max_per_category=2)["offer_id"].to_list()  # 2: product 10 again; 4: category a full
    [1, 3, 5]
    """
    columns = scored.columns
    x = scored
    missing = [c for c in ("product_id", "category") if c not in columns]
    if missing:
        if items is None:
            raise ValueError(f"top_k needs the {missing} of each offer: pass items=offer_items(con)")
        x = x.join(items.select("offer_id", *missing), on="offer_id", how="left")
    # small non-negative integer codes, so that sorting and grouping work on single integers; the pass
    # below sorts and filters only these codes and a row number (a day's pool at 250k customers is ~30M
    # pairs: carrying every column through the sort tripled the step's memory), then picks the rows
    codes = x.select(_customer=_code(x, "customer_id"),
                     _score=pl.col(score).rank("dense", descending=True).cast(pl.Int64),
                     _offer=_code(x, "offer_id"),
                     _product=_code(x, "product_id"),
                     _category=pl.col("category").cast(pl.Utf8).cast(pl.Categorical).to_physical().cast(pl.Int64)
                     ).with_row_index("_row")
    # an offer without a known product or category stands for itself, so it is never wrongly dropped
    top = {c: int(codes[c].max() or 0) for c in ("_score", "_offer", "_product", "_category")}
    codes = codes.with_columns(
        _score=pl.col("_score").fill_null(top["_score"] + 1),  # no score: last
        _product=pl.col("_product").fill_null(top["_product"] + pl.col("_offer")),
        _category=pl.col("_category").fill_null(top["_category"] + pl.col("_offer")),
    )
    codes = codes.sort(_order_key(codes)).drop("_score", "_offer")
    # the greedy pass, vectorised: an offer is skipped only for an earlier offer of its product (whose
    # category is then full too if it was skipped) or for max_per_category earlier kept offers of its category
    codes = codes.filter(_pair_key(codes, "_product").is_first_distinct())
    if max_per_category is not None:
        codes = codes.filter(pl.int_range(pl.len()).over(_pair_key(codes, "_category")) < max_per_category)
    codes = (codes.with_columns(rank=pl.int_range(1, pl.len() + 1).over("_customer").cast(pl.Int32))
             .filter(pl.col("rank") <= k))
    return x.select(columns)[codes["_row"]].with_columns(rank=codes["rank"])


def _code(x: pl.DataFrame, column: str) -> pl.Expr:
    """The id itself when it is a non-negative integer (the usual case, free), else its dense rank."""
    col = x[column]
    if col.dtype.is_integer() and (col.min() is None or col.min() >= 0):
        return pl.col(column).cast(pl.Int64)
    return pl.col(column).rank("dense").cast(pl.Int64)


def _bits(x: pl.DataFrame, column: str) -> int:
    return int(x[column].max() or 0).bit_length()


def _order_key(x: pl.DataFrame) -> pl.Expr | list[str]:
    """customer, then score (best first), then offer_id as one integer when it fits in 63 bits.

    Sorting one integer is ~3x faster than a three-key sort on a pool of millions of pairs.
    """
    s, o = _bits(x, "_score"), _bits(x, "_offer")
    if _bits(x, "_customer") + s + o > 62:
        return ["_customer", "_score", "_offer"]
    return pl.col("_customer") * (1 << (s + o)) + pl.col("_score") * (1 << o) + pl.col("_offer")


def _pair_key(x: pl.DataFrame, column: str) -> pl.Expr:
    """(customer, ``column``) as one integer when it fits, else a struct."""
    bits = _bits(x, column)
    if _bits(x, "_customer") + bits > 62:
        return pl.struct("_customer", column)
    return pl.col("_customer") * (1 << bits) + pl.col(column)
