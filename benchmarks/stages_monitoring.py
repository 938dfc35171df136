"""Benchmark of the monitoring stage for one run date (see benchmarks/run.py).

Times, on a warehouse where the daily pipeline has run for ``day`` (its pool
and recommendations exist): the drift report (PSI of six features and of the
served scores against the serving model's training day), then the offline
evaluation's parts: the other model kind rescoring the whole pool, the oracle's
true probabilities of every pool pair, and the whole evaluation (all policies,
observed and oracle metrics). The evaluation needs the week after ``day`` in
the warehouse (2026-01-28 or 2026-02-04 at the default scale).

Usage (the lead's harness calls :func:`bench_drift` and :func:`bench_evaluation`)::

    .venv/bin/python benchmarks/stages_monitoring.py /tmp/bench/warehouse.duckdb 2026-02-04
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metro_assets.monitoring import drift, evaluation  # noqa: E402
from metro_assets.ranking.scoring import score_pool, selected_model  # noqa: E402


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _row(stage: str, seconds: float, rows: int | None, **extra) -> dict:
    return {"stage": stage, "seconds": round(seconds, 2), "rows": rows,
            "rows_per_s": round(rows / seconds) if rows and seconds else None, "peak_mb": _peak_mb(), **extra}


def bench_drift(con, day: date) -> list[dict]:
    """Time the drift report of ``day`` (written, as the asset does)."""
    started = time.perf_counter()
    report = drift.drift_report(con, day)
    drift.write_drift_report(con, report)
    seconds = time.perf_counter() - started
    compared = int(report.rows["baseline_rows"].sum() + report.rows["current_rows"].sum())
    return [_row(f"monitoring: drift_report {day} (vs {report.baseline_day})", seconds, compared,
                 alert=report.alert, psi={r["feature"]: round(r["psi"], 4) for r in report.rows.iter_rows(named=True)})]


def bench_evaluation(con, day: date) -> list[dict]:
    """Time the offline evaluation of ``day`` and its two heavy parts (written, as the asset does)."""
    rows = []
    pairs = con.sql("SELECT count(*) FROM candidate_pool WHERE day = $d", params={"d": day}).fetchall()[0][0]
    served = con.sql("SELECT any_value(m.kind) FROM recommendations r JOIN model_versions m USING (model_version) "
                     "WHERE r.run_date = $d", params={"d": day}).fetchall()[0][0]
    other = "logistic_regression" if served == "lightgbm" else "lightgbm"
    started = time.perf_counter()
    score_pool(con, day, selected_model(con, day, kind=other)[1])
    rows.append(_row(f"monitoring: rescoring the pool with {other}", time.perf_counter() - started, pairs))
    started = time.perf_counter()
    truth = evaluation.pool_truth(con, day)
    rows.append(_row("monitoring: oracle probabilities of the pool", time.perf_counter() - started, truth.height))
    started = time.perf_counter()
    result = evaluation.evaluate(con, day)
    evaluation.write_evaluation(con, result)
    seconds = time.perf_counter() - started
    figures = {}
    if result.complete:
        wide = {(r["policy"], r["metric"]): r["value"] for r in result.rows.iter_rows(named=True)}
        figures = {f"{p}_{m}": round(wide[(p, m)], 4) for p in evaluation.POLICIES
                   for m in ("ndcg_at_10", "oracle_share") if (p, m) in wide}
    rows.append(_row(f"monitoring: offline_evaluation {day} (all policies)", seconds, pairs,
                     recorded=result.complete, **figures))
    return rows


if __name__ == "__main__":
    import json

    import duckdb

    with duckdb.connect(sys.argv[1]) as connection:
        run_date = date.fromisoformat(sys.argv[2])
        print(json.dumps(bench_drift(connection, run_date) + bench_evaluation(connection, run_date), indent=1))
