"""What each retrieval strategy earns: the pool's recall with each one left out, at equal pool size.

For day D (when the warehouse holds days after it), against the week after
D: the share of the redemptions, and of the purchases of offers eligible for
the customer, whose (customer, offer) the pool contains. Strategy sets:

* ``all``: the pool as written (``candidate_pool``);
* ``without <strategy>``: the same customers, each with as many offers as in
  the real pool, filled by the other strategies (within their quotas in
  priority order, then their next-best picks), so a strategy is credited only
  for what it finds that the others would not have found in its slots;
* ``eligible``: every offer eligible for the customer (the ceiling: no retrieval).

Only the customers with a label are built (``pairs`` counts their pairs):
the others cannot change a recall.

The rows go to ``retrieval_summary`` (one per day and strategy set), and
:func:`recall_table` makes the candidate asset's Markdown metadata of them.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import polars as pl

from metro_assets.candidates.strategies import CODES, PRIORITY, candidate_pool_params
from metro_assets.settings import CandidateLimits
from metro_assets.warehouse import read_sql, replace_partitions

_PACKAGE = "metro_assets.candidates"
LABEL_DAYS = 7


def label_end(con: duckdb.DuckDBPyConnection, day: date) -> date:
    """End of the recall window [day, day + 7), cut to the days the warehouse holds."""
    last = con.sql("SELECT max(day) FROM orders").fetchall()[0][0]
    end = day + timedelta(days=LABEL_DAYS)
    return min(end, last + timedelta(days=1)) if last is not None else day


def _found(con: duckdb.DuckDBPyConnection, pairs_sql: str, params: dict) -> tuple[int, int, int]:
    """(pairs, redemptions found, purchases found) of the pool ``pairs_sql`` selects."""
    params = {k: v for k, v in params.items() if f"${k}" in pairs_sql}  # DuckDB refuses unused parameters
    return con.sql(
        f"""
        WITH pool AS ({pairs_sql})
        SELECT (SELECT count(*) FROM pool),
               count(*) FILTER (WHERE l.kind = 'redemption'),
               count(*) FILTER (WHERE l.kind = 'purchase')
        FROM recall_labels l SEMI JOIN pool p ON p.customer_id = l.customer_id AND p.offer_id = l.offer_id
        """,
        params=params,
    ).fetchall()[0]


def retrieval_recall(con: duckdb.DuckDBPyConnection, day: date, limits: CandidateLimits) -> pl.DataFrame:
    """The ``retrieval_summary`` rows of ``day`` (without writing them).

    Needs the temp tables ``eligible_offers`` and ``candidate_picks`` of ``day``
    (ranked deeper than the quotas: see ``prepare_candidate_picks(deeper=...)``)
    and ``day``'s ``candidate_pool``.
    """
    end = label_end(con, day)
    con.execute(f"CREATE OR REPLACE TEMP TABLE recall_labels AS {read_sql(_PACKAGE, 'recall_labels')}",
                {"day": day, "label_end": end})
    try:
        counts = dict(con.sql("SELECT kind, count(*) FROM recall_labels GROUP BY ALL").fetchall())
        used = [s for s in PRIORITY if con.execute("SELECT count(*) FROM candidate_pool WHERE day = ? AND "
                                                   "strategy = ?", [day, s]).fetchall()[0][0]]
        params = {**candidate_pool_params(limits), "day": day}
        variant = read_sql(_PACKAGE, "recall_variant")
        rows = []
        for name, left_out in [("all", None)] + [(f"without {s}", s) for s in used]:  # one query per set
            found = _found(con, variant, {**params, "left_out": CODES[left_out] if left_out else 0})
            rows.append((name, [s for s in used if s != left_out], limits.max_candidates, *found))
        eligible = ("SELECT c.customer_id, e.offer_id FROM customer_features c JOIN eligible_offers e "
                    "ON e.day = c.day AND e.home_store_id = c.home_store_id AND e.segment = c.segment "
                    "WHERE c.day = $day AND c.customer_id IN (SELECT customer_id FROM recall_labels)")
        rows.append(("eligible", [], None, *_found(con, eligible, {"day": day})))
    finally:
        con.execute("DROP TABLE IF EXISTS recall_labels")
    redemptions, purchases = counts.get("redemption", 0), counts.get("purchase", 0)
    return pl.DataFrame(
        [
            {
                "day": day, "strategy_set": name, "strategies": strategies, "max_candidates": cap,
                "pairs": pairs, "redemptions": redemptions, "redemptions_found": red,
                "redemption_recall": red / redemptions if redemptions else None,
                "purchases": purchases, "purchases_found": pur,
                "purchase_recall": pur / purchases if purchases else None,
                "label_days": (end - day).days,
            }
            for name, strategies, cap, pairs, red, pur in rows
        ],
        schema={"day": pl.Date, "strategy_set": pl.Utf8, "strategies": pl.List(pl.Utf8),
                "max_candidates": pl.Int32, "pairs": pl.Int64, "redemptions": pl.Int64,
                "redemptions_found": pl.Int64, "redemption_recall": pl.Float64, "purchases": pl.Int64,
                "purchases_found": pl.Int64, "purchase_recall": pl.Float64, "label_days": pl.Int32},
    )


def write_retrieval_summary(con: duckdb.DuckDBPyConnection, day: date, limits: CandidateLimits) -> pl.DataFrame:
    """Replace ``day``'s ``retrieval_summary`` rows (one transaction) and return them."""
    rows = retrieval_recall(con, day, limits)
    replace_partitions(con, {"retrieval_summary": rows}, day, day + timedelta(days=1))
    return rows


def recall_table(rows: pl.DataFrame) -> str | None:
    """The rows as Markdown (the candidate asset's ``strategy_recall`` metadata), or None without rows.

    Examples
    --------
    >>> print(recall_table(pl.DataFrame({"strategy_set": ["all"], "pairs": [10], "redemption_recall": [0.5],
    ...                                  "purchase_recall": [0.25]})))
    | strategy set | pairs | recall (redemptions) | recall (purchases of eligible offers) |
    |---|---|---|---|
    | all | 10 | 0.5000 | 0.2500 |
    """
    if rows.height == 0:
        return None

    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}"

    lines = [f"| {r['strategy_set']} | {r['pairs']} | {fmt(r['redemption_recall'])} | {fmt(r['purchase_recall'])} |"
             for r in rows.iter_rows(named=True)]
    return ("| strategy set | pairs | recall (redemptions) | recall (purchases of eligible offers) |\n"
            "|---|---|---|---|\n" + "\n".join(lines))
