"""The ranker's training set and training run, with no Dagster inside.

For a training day D the model may learn only from what had closed before D:
impressions shown in the trailing window whose 7-day label window ended before
D, with features computed as of each impression's own day (point in time,
through :func:`metro_assets.features.compute.feature_matrix`). The last week
of the window is the validation set (a temporal split, never shuffled).

Examples
--------
>>> from datetime import date
>>> TrainingWindow.ending(date(2026, 2, 9), weeks=8)
TrainingWindow(start=datetime.date(2025, 12, 15), validation_start=datetime.date(2026, 1, 26), end=datetime.date(2026, 2, 2))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.errors import DataError
from metro_assets.features.compute import MODEL_FEATURES, feature_matrix
from metro_assets.ranking import models
from metro_assets.warehouse import read_sql

LABEL_DAYS = 7

#: Offer features the rankers leave out: they record how the legacy policy exposed an offer (who it
#: was shown to and how they answered), not how a given customer would answer it. Measured on the
#: default world (docs/EVALUATION.md): with them the logistic regression's top 10 reached 1 to 1.7
#: points less of the oracle's expected redemptions; the validation AUC barely moved.
EXPOSURE_FEATURES = ("historical_redemption_rate", "impressions_before", "redemptions_before", "days_until_expiry")
#: The rankers' inputs, in model order (a stored model keeps its own list).
RANKER_FEATURES = [f for f in MODEL_FEATURES if f not in EXPOSURE_FEATURES]


@dataclass(frozen=True)
class TrainingWindow:
    """Impression days [start, end): training [start, validation_start), validation [validation_start, end)."""

    start: date
    validation_start: date
    end: date

    @classmethod
    def ending(cls, train_day: date, weeks: int) -> "TrainingWindow":
        end = train_day - timedelta(days=LABEL_DAYS)  # labels of impressions before `end` closed before D
        return cls(train_day - timedelta(weeks=weeks), end - timedelta(days=7), end)


@dataclass
class TrainingSet:
    train: pl.DataFrame       # sampled: all positives, negatives kept at `sampling_rate`
    validation: pl.DataFrame  # the last week, unsampled
    sampling_rate: float
    window: TrainingWindow


def training_set(con: duckdb.DuckDBPyConnection, train_day: date, weeks: int = 8,
                 negatives_per_positive: float = 4.0, seed: int = 42) -> TrainingSet:
    """Labelled impressions before ``train_day`` with point-in-time features.

    Raises
    ------
    DataError
        When the window holds no impressions or its training part no redemption.
    """
    window = TrainingWindow.ending(train_day, weeks)
    shown = con.sql(
        read_sql("metro_assets.ranking", "training_impressions"),
        params={"window_start": window.start, "label_cutoff": window.end},
    ).pl()
    if shown.height == 0:
        raise DataError(f"no impressions shown between {window.start} and {window.end} to train the ranker "
                        f"for {train_day}: materialize the raw data of those days first")
    train = shown.filter(pl.col("day") < window.validation_start)
    positives = int(train["label"].sum())
    if positives == 0:
        raise DataError(f"no redemption followed the {train.height} impressions shown between {window.start} and "
                        f"{window.validation_start}: the ranker for {train_day} has no positive example")
    negatives = train.height - positives
    rate = min(1.0, negatives_per_positive * positives / max(negatives, 1))
    keep = np.random.default_rng([seed, train_day.toordinal()]).random(train.height) < rate
    train = train.filter(pl.Series(keep) | pl.col("label"))
    sample = pl.concat([train, shown.filter(pl.col("day") >= window.validation_start)])
    con.register("training_requests", sample.select("customer_id", "offer_id", "day").to_arrow())
    try:
        features = feature_matrix(con, "training_requests")
    finally:
        con.unregister("training_requests")
    # a fixed row order: the model must not depend on how the join happened to run
    sample = sample.join(features, on=["customer_id", "offer_id", "day"], how="left").sort(
        "day", "customer_id", "offer_id")
    return TrainingSet(
        train=sample.filter(pl.col("day") < window.validation_start),
        validation=sample.filter(pl.col("day") >= window.validation_start),
        sampling_rate=rate,
        window=window,
    )


def as_matrix(frame: pl.DataFrame, features: list[str] = RANKER_FEATURES) -> np.ndarray:
    """The feature columns as a float matrix (NaN for missing values)."""
    return frame.select(pl.col(features).cast(pl.Float64)).to_numpy()


@dataclass
class TrainedModel:
    """One trained candidate model with its validation figures."""

    stored: models.StoredModel
    metrics: dict
    selected: bool = False


def train_rankers(ts: TrainingSet) -> tuple[list[TrainedModel], str]:
    """Train both kinds, validate on the last week, and mark the better one selected.

    When the validation week cannot separate them (no impressions, or only one
    class), the logistic regression serves: with so little signal the simpler
    model is the safer choice. Returns the models and the reason for the choice.
    """
    X, y = as_matrix(ts.train), ts.train["label"].to_numpy().astype(int)
    Xv, yv = as_matrix(ts.validation), ts.validation["label"].to_numpy().astype(int)
    trained = []
    for train in (models.train_lightgbm, models.train_logistic_regression):
        stored = train(X, y, list(RANKER_FEATURES), ts.sampling_rate)
        p = models.load(stored).predict(Xv) if len(yv) else np.zeros(0)
        trained.append(TrainedModel(stored, models.validation_metrics(yv, p)))
    lgbm, lr = trained
    if lgbm.metrics["auc"] is None:
        lr.selected = True
        reason = ("validation week has " + ("no impressions" if len(yv) == 0 else "a single class")
                  + ": logistic regression serves by default")
    elif models.better(lgbm.metrics, lr.metrics):
        lgbm.selected, reason = True, "lightgbm: better validation AUC/log-loss"
    else:
        lr.selected, reason = True, "logistic_regression: better validation AUC/log-loss"
    return trained, reason


def model_rows(train_day: date, ts: TrainingSet, trained: list[TrainedModel], reason: str) -> pl.DataFrame:
    """The rows of ``model_versions`` for one training day."""
    return pl.DataFrame(
        [
            {
                "model_version": f"{train_day}-{m.stored.kind}",
                "day": train_day,
                "kind": m.stored.kind,
                "selected": m.selected,
                "model": m.stored.blob,
                "features": m.stored.features,
                "train_start": ts.window.start,
                "validation_start": ts.window.validation_start,
                "train_end": ts.window.end,
                "negative_sampling_rate": ts.sampling_rate,
                "train_rows": ts.train.height,
                "train_positives": int(ts.train["label"].sum()),
                "validation_rows": ts.validation.height,
                "validation_positives": int(ts.validation["label"].sum()),
                "validation_auc": m.metrics["auc"],
                "validation_log_loss": m.metrics["log_loss"],
                "importances": json.dumps(m.stored.importances),
                "selection_reason": reason,
            }
            for m in trained
        ]
    )
