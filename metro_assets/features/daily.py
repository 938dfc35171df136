"""The daily feature tables: one day's requests through :mod:`~metro_assets.features.compute`.

:func:`write_features` replaces one day's partition of a table in one
transaction, with the same SQL the ranker uses for historical pairs: only the
requests differ (that day's customers, offers or candidate pairs).

Examples
--------
>>> import duckdb
>>> from metro_assets.warehouse import ensure_schema
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> write_features(con, "offer_features", date(2025, 9, 26))  # no offers yet: an empty partition
0
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from metro_assets.embeddings.vectors import pair_affinity, stored_vectors
from metro_assets.features.compute import feature_sql, sql_params
from metro_assets.settings import EmbeddingSettings
from metro_assets.warehouse import replace_partitions_sql

#: The requests of one day's partition of each table ($day is the partition).
DAILY_REQUESTS = {
    # customers known before D (members who joined before the history sit in its first day)
    "customer_features": "SELECT customer_id, $day::DATE AS day FROM customers WHERE day < $day",
    # offers active on D and published before D
    "offer_features": (
        "SELECT offer_id, $day::DATE AS day FROM offers "
        "WHERE start_date <= $day AND $day <= end_date AND day < $day"
    ),
    # the day's candidate pairs
    "interaction_features": "SELECT customer_id, offer_id, day FROM candidate_pool WHERE day = $day",
}


def write_features(con: duckdb.DuckDBPyConnection, table: str, day: date,
                   embedding: EmbeddingSettings = EmbeddingSettings()) -> int:
    """Replace ``table``'s partition ``day`` (one transaction); returns the rows written.

    ``interaction_features`` gets its ``embedding_affinity`` from the newest
    ``product_embeddings`` trained on or before ``day`` (NULL without one, or
    with ``METRO_EMBEDDING_FEATURE=false``).
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE daily_requests AS {DAILY_REQUESTS[table]}", {"day": day})
    affinity = None
    try:
        if table == "interaction_features" and embedding.feature:
            frame = pair_affinity(con, "daily_requests", stored_vectors(con, day), embedding)
            con.register("daily_affinity_frame", frame.to_arrow())  # registered: replacement scans miss wrapped connections
            con.execute("CREATE OR REPLACE TEMP TABLE daily_affinity AS SELECT * FROM daily_affinity_frame")
            con.unregister("daily_affinity_frame")
            affinity = "daily_affinity"
        sql = feature_sql(table, "daily_requests", affinity)
        return replace_partitions_sql(con, table, sql, sql_params(sql), day, day + timedelta(days=1))
    finally:
        con.execute("DROP TABLE IF EXISTS daily_requests")
        con.execute("DROP TABLE IF EXISTS daily_affinity")

