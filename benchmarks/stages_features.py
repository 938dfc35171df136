"""Benchmark of the features and candidates stages for one day (see benchmarks/run.py).

Times, on an existing warehouse holding the raw history: the four daily
tables of ``day`` as the assets write them (customer and offer features,
candidate pool, interaction features), then the ranker's two uses of
:func:`metro_assets.features.compute.feature_matrix`: eight weeks of
historical impression pairs, and every pair of the day's pool; then the
scoring path's read of that pool, :func:`~metro_assets.features.compute.stored_matrix`
(the day's feature tables joined, nothing recomputed).

Usage (the lead's harness calls :func:`bench_features`)::

    .venv/bin/python benchmarks/stages_features.py /tmp/bench/warehouse.duckdb 2026-01-28
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metro_assets.candidates.retrieval import write_candidate_pool  # noqa: E402
from metro_assets.features.compute import feature_matrix, stored_matrix  # noqa: E402
from metro_assets.features.daily import write_features  # noqa: E402
from metro_assets.settings import load_candidate_limits  # noqa: E402


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _row(stage: str, seconds: float, rows: int, **extra) -> dict:
    return {"stage": stage, "seconds": round(seconds, 2), "rows": rows,
            "rows_per_s": round(rows / seconds) if rows and seconds else None, "peak_mb": _peak_mb(), **extra}


def bench_features(con, day: date, history_days: int = 56) -> list[dict]:
    """Time the features and candidates of ``day`` on the warehouse ``con`` (writes that day's partitions).

    Returns rows ``{stage, seconds, rows, rows_per_s, peak_mb}`` (``peak_mb``: this
    process's peak RSS so far); the pool row also carries pool sizes and recall.
    """
    rows, total = [], 0.0
    for table in ("customer_features", "offer_features"):
        started = time.perf_counter()
        n = write_features(con, table, day)
        seconds = time.perf_counter() - started
        total += seconds
        rows.append(_row(f"features: {table} (one day)", seconds, n))
    started = time.perf_counter()
    summary = write_candidate_pool(con, day, load_candidate_limits())
    seconds = time.perf_counter() - started
    total += seconds
    rows.append(_row("candidates: candidate_pool (one day, incl. recall)", seconds, summary["pairs"],
                     mean_candidates=round(summary["mean_candidates"], 1), max_candidates=summary["max_candidates"],
                     customers_covered=summary["customers_covered"], retrieval_recall=summary["retrieval_recall"],
                     reference_recall=summary["reference_recall"], strategy_shares=summary["strategy_shares"]))
    started = time.perf_counter()
    n = write_features(con, "interaction_features", day)
    seconds = time.perf_counter() - started
    total += seconds
    rows.append(_row("features: interaction_features (the day's pool)", seconds, n))
    rows.append(_row("features + candidates: one day, all four tables", total, summary["pairs"]))

    con.execute("CREATE OR REPLACE TEMP TABLE bench_history AS SELECT customer_id, offer_id, day FROM impressions "
                "WHERE day >= $day::DATE - $n AND day < $day", {"day": day, "n": history_days})
    started = time.perf_counter()
    matrix = feature_matrix(con, "bench_history")
    rows.append(_row(f"feature_matrix: impression pairs of {history_days} days", time.perf_counter() - started,
                     matrix.height))
    del matrix
    con.execute("CREATE OR REPLACE TEMP TABLE bench_pool AS SELECT customer_id, offer_id, day FROM candidate_pool "
                "WHERE day = $day", {"day": day})
    started = time.perf_counter()
    matrix = feature_matrix(con, "bench_pool")
    rows.append(_row("feature_matrix: the day's pool, computed (what scoring did before)",
                     time.perf_counter() - started, matrix.height))
    del matrix
    started = time.perf_counter()
    matrix = stored_matrix(con, "bench_pool", day)
    rows.append(_row("stored_matrix: the day's pool, read from its feature tables (scoring)",
                     time.perf_counter() - started, matrix.height))
    del matrix
    con.execute("DROP TABLE IF EXISTS bench_history")
    con.execute("DROP TABLE IF EXISTS bench_pool")
    return rows


if __name__ == "__main__":
    import json

    from metro_assets.warehouse import connect

    with connect(sys.argv[1]) as connection:
        for result in bench_features(connection, date.fromisoformat(sys.argv[2])):
            print(json.dumps(result, default=str))
