"""Fit SASRec for a retrain day and measure it against popularity and buy-again (no Dagster here).

The model for retrain day D learns from purchases dated before ``trained_before``
(the ranker's training window start, ``D - METRO_TRAIN_WEEKS`` weeks): the ranker's
training rows of days in [trained_before, D) and the served days from D on then
all read a model that learnt nothing from their day or later, while their input
sequences are their own purchases before their day (point in time, see
:mod:`metro_assets.sequence.scores`).
"""

from __future__ import annotations

import json
from datetime import date

import duckdb
import polars as pl

from metro_assets.errors import DataError
from metro_assets.sequence.history import encode, purchase_events, split_last_basket, vocabulary
from metro_assets.sequence.metrics import buy_again_top, popularity_top, ranking_metrics

#: At least this many customers with a held-out basket, or the model is not trained (too little to learn from).
MIN_CUSTOMERS = 50


def fit(con: duckdb.DuckDBPyConnection, day: date, trained_before: date, config, seed: int,
        device: str = "cpu", log=None) -> tuple[dict, dict]:
    """Train SASRec on purchases before ``trained_before``; returns (its ``sequence_models`` row, the report).

    The report holds Hit@10 and NDCG@10 leave-last-basket-out for ``sasrec``,
    ``popularity`` and ``buy_again`` on the same customers and targets.

    Raises
    ------
    DataError
        When fewer than :data:`MIN_CUSTOMERS` customers bought on two days before ``trained_before``.
    """
    from metro_assets.sequence import sasrec  # torch: only here, after deep_status said it runs

    events = purchase_events(con, trained_before)
    vocab = vocabulary(events)
    encoded = encode(events, vocab)
    history, held_out = split_last_basket(encoded)
    customers = held_out["customer_id"].n_unique()
    if customers < MIN_CUSTOMERS:
        raise DataError(f"SASRec for {day}: only {customers} customers bought on two days or more before "
                        f"{trained_before} (needs {MIN_CUSTOMERS}); simulate or import more history, or lower "
                        "METRO_TRAIN_WEEKS (the model learns from purchases before the ranker's window)")
    trained = sasrec.train(history, held_out, vocab, config, seed, device, log)
    who = held_out["customer_id"]
    report = {
        "sasrec": sasrec.evaluate(trained.model, history, held_out, 10, device),
        "popularity": ranking_metrics(popularity_top(history, who), held_out),
        "buy_again": ranking_metrics(buy_again_top(history, who), held_out),
    }
    row = {
        "model_version": f"{day}-sasrec",
        "day": day,
        "trained_before": trained_before,
        **sasrec.to_blobs(trained),
        "items": len(vocab),
        "customers": encoded["customer_id"].n_unique(),
        "events": encoded.height,
        "best_epoch": trained.best_epoch,
        "seconds_per_epoch": round(trained.seconds_per_epoch, 2),
        "epochs": json.dumps(trained.epochs),
        **{f"{policy}_{m}_at_10": report[policy][f"{m}_at_k"]
           for policy in report for m in ("hit", "ndcg")},
        "evaluated_customers": report["sasrec"]["customers"],
    }
    return row, report


def report_table(report: dict) -> str:
    """The report as a Markdown table (asset metadata, docs)."""
    lines = ["| policy | Hit@10 | NDCG@10 |", "|---|---|---|"]
    lines += [f"| {p} | {m['hit_at_k']:.4f} | {m['ndcg_at_k']:.4f} |" for p, m in report.items()]
    return "\n".join(lines)


def rows_frame(row: dict) -> pl.DataFrame:
    """One ``sequence_models`` row as a frame (BLOB columns as binary)."""
    return pl.DataFrame([row], schema_overrides={"weights": pl.Binary, "vocab": pl.Binary})
