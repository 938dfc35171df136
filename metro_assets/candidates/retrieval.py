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

from metro_assets.settings import CandidateLimits
from metro_assets.warehouse import read_sql, replace_partitions_sql

_PACKAGE = "metro_assets.candidates"

#: Strategies in priority order: a pair retrieved by several keeps the first.
WARM_STRATEGIES = ("category_affinity", "segment_popularity", "repeat_purchase", "high_margin")
COLD_STRATEGIES = ("store_popularity", "segment_default", "essentials")
STRATEGIES = WARM_STRATEGIES + COLD_STRATEGIES
LABEL_DAYS = 7


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
    """The SELECT of the pool (needs the temp table from :func:`prepare_eligible_offers`)."""
    return read_sql(_PACKAGE, "candidate_pool")


def candidate_pool_params(start: date, end: date, limits: CandidateLimits) -> dict:
    """Named parameters of :func:`candidate_pool_sql`."""
    return {
        "start": start,
        "end": end,
        "category_limit": limits.category,
        "segment_limit": limits.segment,
        "repeat_limit": limits.repeat,
        "margin_limit": limits.margin,
        "max_candidates": limits.max_candidates,
    }


def candidate_pool(con: duckdb.DuckDBPyConnection, start: date, end: date, limits: CandidateLimits) -> pl.DataFrame:
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
    prepare_eligible_offers(con, start, end)
    return con.sql(candidate_pool_sql(), params=candidate_pool_params(start, end, limits)).pl()


def write_candidate_pool(con: duckdb.DuckDBPyConnection, day: date, limits: CandidateLimits) -> dict:
    """Replace the pool of ``day`` (one transaction) and return its :func:`pool_summary`.

    Needs that day's ``customer_features`` and ``offer_features`` rows. A day
    without active offers writes an empty pool; the summary then carries a warning.
    """
    end = day + timedelta(days=1)
    prepare_eligible_offers(con, day, end)
    replace_partitions_sql(
        con, "candidate_pool", candidate_pool_sql(), candidate_pool_params(day, end, limits), day, end
    )
    summary = pool_summary(con, day)
    if summary["pairs"] == 0:
        summary["warning"] = f"no offer is eligible for any customer on {day}: the pool is empty"
    elif summary["customers_covered"] < summary["customers_with_eligible_offers"]:
        summary["warning"] = "some customers with eligible offers got no candidate"
    return summary


def label_end(con: duckdb.DuckDBPyConnection, day: date) -> date:
    """End of the recall window [day, day + 7), cut to the days the warehouse holds."""
    last = con.sql("SELECT max(day) FROM orders").fetchall()[0][0]
    end = day + timedelta(days=LABEL_DAYS)
    return min(end, last + timedelta(days=1)) if last is not None else day


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
    values = con.sql(read_sql(_PACKAGE, "retrieval_summary"), params={"day": day, "label_end": end}).fetchall()[0]
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
