"""Candidate retrieval: eligibility first, then the strategies, with no Dagster inside.

The pool of day D is built from that day's ``customer_features`` and
``offer_features`` rows (so it sees only what was known at the start of D)
and the raw order history before D. See ``sql/candidate_pool.sql`` for the
strategies and docs/FEATURES.md for what each one means.

Examples
--------
>>> import duckdb
>>> con = duckdb.connect()
>>> con.sql("select " + store_in_scope("' 3, 17,,x'", "17") + " as ok").fetchall()
[(True,)]
>>> con.sql("select " + store_in_scope("''", "5") + " as ok").fetchall()  # blank scope: every store
[(True,)]
>>> con.sql("select " + segment_in_scope("'Premium , family'", "'premium'") + " as ok").fetchall()
[(True,)]
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import polars as pl

from metro_assets.candidates.recall import label_end, recall_table, write_retrieval_summary
from metro_assets.candidates.strategies import (  # noqa: F401 (re-exported: the tests and evaluation use them)
    CODES, COLD_STRATEGIES, PRIORITY, STRATEGIES, WARM_STRATEGIES, candidate_pool_params)
from metro_assets.embeddings.retrieval import prepare_embedding_neighbours
from metro_assets.settings import CandidateLimits, EmbeddingSettings
from metro_assets.warehouse import read_sql, replace_partitions, replace_partitions_sql

_PACKAGE = "metro_assets.candidates"


def store_in_scope(scope: str, store: str) -> str:
    """SQL: is store ``store`` in the comma-separated ``scope``?

    NULL, empty or blank scopes mean every store (exports often write '' for
    NULL). Items are trimmed; items that are not whole numbers and unknown
    store ids never match, so a scope made only of them matches no store.
    """
    return (
        f"(nullif(trim({scope}), '') IS NULL OR list_contains("
        f"list_transform(string_split({scope}, ','), lambda x: TRY_CAST(trim(x) AS INTEGER)), {store}))"
    )


def segment_in_scope(scope: str, segment: str) -> str:
    """SQL: is ``segment`` in the comma-separated ``scope`` (trimmed, case-insensitive)?"""
    return (
        f"(nullif(trim({scope}), '') IS NULL OR list_contains("
        f"list_transform(string_split(lower({scope}), ','), lambda x: trim(x)), lower(trim({segment}))))"
    )


def eligible_offers_sql() -> str:
    """SELECT (day, home_store_id, segment, offer_id, ...) eligible pairs of groups and offers."""
    return (
        read_sql(_PACKAGE, "eligible_offers")
        .replace("{store_ok}", store_in_scope("l.store_scope", "g.home_store_id"))
        .replace("{segment_ok}", segment_in_scope("l.segment_scope", "g.segment"))
    )


def prepare_eligible_offers(con: duckdb.DuckDBPyConnection, start: date, end: date) -> int:
    """Create the temp table ``eligible_offers`` for [start, end); returns its row count.

    Needs the ``customer_features`` and ``offer_features`` rows of those days.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE eligible_offers AS {eligible_offers_sql()}", {"start": start, "end": end}
    )
    return con.sql("SELECT count(*) FROM eligible_offers").fetchall()[0][0]


def candidate_pool_sql() -> str:
    """The SELECT of the pool (needs the temp tables of :func:`prepare_candidate_picks`)."""
    return read_sql(_PACKAGE, "candidate_pool")


def picks_params(start: date, end: date, limits: CandidateLimits, deeper: int = 0) -> dict:
    """Named parameters of ``candidate_picks.sql``: each strategy down to its quota, or ``deeper``."""
    return {
        "start": start,
        "end": end,
        "category_depth": max(limits.category, deeper),
        "segment_depth": max(limits.segment, deeper),
        "repeat_depth": max(limits.repeat, deeper),
        "margin_depth": max(limits.margin, deeper),
        "embedding_depth": max(limits.embedding, deeper) if limits.embedding else 0,
    }


def prepare_candidate_picks(con: duckdb.DuckDBPyConnection, start: date, end: date, limits: CandidateLimits,
                            embedding: EmbeddingSettings = EmbeddingSettings(), deeper: int = 0) -> dict:
    """Create the temp tables ``eligible_offers``, ``embedding_neighbours`` and ``candidate_picks`` for
    [start, end); returns notes on the embedding search (metadata).

    ``deeper`` ranks every strategy down to at least that many picks (what
    :func:`write_retrieval_summary` needs to fill a left-out strategy's slots).
    """
    prepare_eligible_offers(con, start, end)
    quota = max(limits.embedding, deeper) if limits.embedding else 0
    notes = prepare_embedding_neighbours(con, [start + timedelta(days=i) for i in range((end - start).days)],
                                         quota, embedding)
    con.execute(f"CREATE OR REPLACE TEMP TABLE candidate_picks AS {read_sql(_PACKAGE, 'candidate_picks')}",
                picks_params(start, end, limits, deeper))
    return notes


def candidate_pool(con: duckdb.DuckDBPyConnection, start: date, end: date, limits: CandidateLimits,
                   embedding: EmbeddingSettings = EmbeddingSettings()) -> pl.DataFrame:
    """The pool of [start, end) as a frame (customer_id, offer_id, day, strategy), without writing it.

    Examples
    --------
    >>> import duckdb
    >>> from metro_assets.warehouse import ensure_schema
    >>> con = duckdb.connect()
    >>> ensure_schema(con)
    >>> candidate_pool(con, date(2025, 9, 26), date(2025, 9, 27), CandidateLimits()).height
    0
    """
    prepare_candidate_picks(con, start, end, limits, embedding)
    return con.sql(candidate_pool_sql(), params=candidate_pool_params(limits)).pl()


def write_candidate_pool(con: duckdb.DuckDBPyConnection, day: date, limits: CandidateLimits,
                         embedding: EmbeddingSettings = EmbeddingSettings()) -> dict:
    """Replace the pool of ``day`` (and its ``retrieval_summary`` rows) and return its :func:`pool_summary`.

    Needs that day's ``customer_features`` and ``offer_features`` rows (and,
    for the embedding strategy, ``product_embeddings`` trained on or before
    it). A day without active offers writes an empty pool; the summary then
    carries a warning. When the warehouse holds days after ``day``, the
    strategies are ranked deeper and the recall of each strategy set is
    written to ``retrieval_summary`` (see :func:`write_retrieval_summary`).
    """
    end = day + timedelta(days=1)
    labelled = label_end(con, day) > day
    notes = prepare_candidate_picks(con, day, end, limits, embedding,
                                    deeper=limits.max_candidates if labelled else 0)
    replace_partitions_sql(con, "candidate_pool", candidate_pool_sql(), candidate_pool_params(limits), day, end)
    summary = pool_summary(con, day)
    summary.update(notes)
    if summary["pairs"] == 0:
        summary["warning"] = f"no offer is eligible for any customer on {day}: the pool is empty"
    elif summary["customers_covered"] < summary["customers_with_eligible_offers"]:
        summary["warning"] = "some customers with eligible offers got no candidate"
    recall = write_retrieval_summary(con, day, limits) if labelled else pl.DataFrame()
    if not labelled:  # re-materializing a day the warehouse has no later days for: no stale rows stay
        replace_partitions(con, {"retrieval_summary": pl.DataFrame()}, day, end)
    summary["strategy_recall"] = recall_table(recall)
    return summary


def scope_warnings(con: duckdb.DuckDBPyConnection, day: date) -> dict:
    """Counts of the day's active offers whose scopes contain items that match nothing."""
    rows = con.sql(
        """
        WITH live AS (
            SELECT o.offer_id, o.store_scope, o.segment_scope FROM offer_features f
            JOIN offers o ON o.offer_id = f.offer_id WHERE f.day = $day
        ),
        store_items AS (
            SELECT offer_id, trim(unnest(string_split(store_scope, ','))) AS item
            FROM live WHERE nullif(trim(store_scope), '') IS NOT NULL
        ),
        segment_items AS (
            SELECT offer_id, lower(trim(unnest(string_split(segment_scope, ',')))) AS item
            FROM live WHERE nullif(trim(segment_scope), '') IS NOT NULL
        )
        SELECT
            (SELECT count(DISTINCT offer_id) FROM store_items s
              WHERE s.item <> '' AND NOT EXISTS (SELECT 1 FROM customers c
                                                 WHERE c.home_store_id = TRY_CAST(s.item AS INTEGER))),
            (SELECT count(DISTINCT offer_id) FROM segment_items s
              WHERE s.item <> '' AND NOT EXISTS (SELECT 1 FROM customers c WHERE lower(c.segment) = s.item)),
            (SELECT count(*) FROM live WHERE store_scope IS NOT NULL AND trim(store_scope) = ''
                                          OR segment_scope IS NOT NULL AND trim(segment_scope) = '')
        """,
        params={"day": day},
    ).fetchall()[0]
    return {
        "offers_with_unknown_store_ids": rows[0],
        "offers_with_unknown_segments": rows[1],
        "offers_with_blank_scopes": rows[2],
    }


def pool_summary(con: duckdb.DuckDBPyConnection, day: date) -> dict:
    """Metadata for the pool of ``day``: coverage, sizes, strategy shares and retrieval recall.

    Needs the temp table ``eligible_offers`` of ``day`` (see :func:`prepare_eligible_offers`).
    Recall is the share of the redemptions in [day, day + 7) (cut to the days
    the warehouse holds; None when it holds none) whose offer was in that
    customer's pool; ``reference_recall`` is the same with every eligible offer.
    """
    end = label_end(con, day)
    names = [
        "customers", "customers_covered", "customers_with_eligible_offers", "pairs", "mean_candidates",
        "max_candidates", "redemptions", "redemptions_in_pool", "redemptions_eligible",
    ]
    values = con.sql(read_sql(_PACKAGE, "pool_summary"), params={"day": day, "label_end": end}).fetchall()[0]
    summary = dict(zip(names, values))
    summary["mean_candidates"] = float(summary["mean_candidates"] or 0.0)
    summary["max_candidates"] = int(summary["max_candidates"] or 0)
    shares = con.sql(
        "SELECT strategy, count(*) / sum(count(*)) OVER () FROM candidate_pool WHERE day = $day GROUP BY ALL",
        params={"day": day},
    ).fetchall()
    share = dict(shares)
    summary["strategy_shares"] = {s: round(float(share.get(s, 0.0)), 4) for s in STRATEGIES}
    labelled = summary["redemptions"]
    summary["label_window"] = f"{day}..{end}" if end > day else "none (no later days in the warehouse)"
    summary["retrieval_recall"] = summary["redemptions_in_pool"] / labelled if labelled else None
    summary["reference_recall"] = summary["redemptions_eligible"] / labelled if labelled else None
    summary.update(scope_warnings(con, day))
    return summary
