"""The ranker's training set and training run, with no Dagster inside.

For a training day D the model may learn only from what had closed before D:
impressions shown in the trailing window whose 7-day label window ended before
D, with features computed as of each impression's own day (point in time,
through :func:`metro_assets.features.compute.feature_matrix`). The last week
of the window is the validation set (a temporal split, never shuffled).

Few positives: the window grows week by week from ``METRO_TRAIN_WEEKS`` up to
``METRO_TRAIN_MAX_WEEKS`` until its training part holds
``METRO_TARGET_TRAIN_POSITIVES`` positives (below ~2,000 more weeks measurably
help: docs/EVALUATION.md, "The blend, and more weeks when positives are few"),
and validation takes as many recent weeks as it needs for
``METRO_MIN_VALIDATION_POSITIVES`` (at most half the window). A window
that cannot reach ``METRO_MIN_TRAIN_POSITIVES`` (a real retailer's sparse log)
or the validation minimum is a warning in the selection reason.

Examples
--------
>>> from datetime import date
>>> TrainingWindow.ending(date(2026, 2, 9), weeks=8)
TrainingWindow(start=datetime.date(2025, 12, 15), validation_start=datetime.date(2026, 1, 26), end=datetime.date(2026, 2, 2))
>>> TrainingWindow.ending(date(2026, 2, 9), weeks=12, validation_weeks=3).validation_start
datetime.date(2026, 1, 12)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.deep import deep_status
from metro_assets.embeddings.item2vec import train_item2vec
from metro_assets.embeddings.vectors import pair_affinity
from metro_assets.errors import DataError
from metro_assets.features.compute import MODEL_FEATURES, feature_matrix
from metro_assets.ranking import models, selection
from metro_assets.ranking.wide_deep import ID_FEATURES, WIDE_DEEP_KIND
from metro_assets.settings import DeepSettings, EmbeddingSettings, RankerSettings
from metro_assets.warehouse import read_sql

LABEL_DAYS = 7

#: Offer features the rankers leave out: they record how the legacy policy exposed an offer (who it
#: was shown to and how they answered), not how a given customer would answer it. Measured on the
#: default world (docs/EVALUATION.md): with them the logistic regression's top 10 reached 1 to 1.7
#: points less of the oracle's expected redemptions; the validation AUC barely moved.
EXPOSURE_FEATURES = ("historical_redemption_rate", "impressions_before", "redemptions_before", "days_until_expiry")
#: The rankers' inputs, in model order (a stored model keeps its own list).
RANKER_FEATURES = [f for f in MODEL_FEATURES if f not in EXPOSURE_FEATURES]


#: Training labels: what counts as a positive for an impression (``METRO_TRAIN_LABEL``).
LABELS = {"redemption": "redeemed", "product_purchase": "purchased"}


@dataclass(frozen=True)
class TrainingWindow:
    """Impression days [start, end): training [start, validation_start), validation [validation_start, end)."""

    start: date
    validation_start: date
    end: date

    @classmethod
    def ending(cls, train_day: date, weeks: int, validation_weeks: int = 1) -> "TrainingWindow":
        end = train_day - timedelta(days=LABEL_DAYS)  # labels of impressions before `end` closed before D
        return cls(train_day - timedelta(weeks=weeks), end - timedelta(weeks=validation_weeks), end)


@dataclass(frozen=True)
class WindowRule:
    """How far back training may reach for enough positives (the ``METRO_TRAIN_*`` settings)."""

    weeks: int = 8                   # METRO_TRAIN_WEEKS: the window when positives are plentiful
    max_weeks: int = 52              # METRO_TRAIN_MAX_WEEKS: how far it may grow
    min_train_positives: int = 500   # METRO_MIN_TRAIN_POSITIVES
    min_validation_positives: int = 50  # METRO_MIN_VALIDATION_POSITIVES
    label: str = "redemption"        # METRO_TRAIN_LABEL: redemption | product_purchase
    #: METRO_TARGET_TRAIN_POSITIVES: grow the window until training holds these (None: the minimum)
    target_train_positives: int | None = None


def window_rule(r: RankerSettings) -> WindowRule:
    """The window rule of the ranker's settings (``METRO_TRAIN_*``, ``METRO_*_POSITIVES``)."""
    return WindowRule(weeks=r.train_weeks, max_weeks=r.max_train_weeks, min_train_positives=r.min_train_positives,
                      min_validation_positives=r.min_validation_positives, label=r.train_label,
                      target_train_positives=r.target_train_positives)


@dataclass
class TrainingSet:
    train: pl.DataFrame       # sampled: all positives, negatives kept at `sampling_rate`
    validation: pl.DataFrame  # the last week(s), unsampled
    sampling_rate: float
    window: TrainingWindow
    label: str = "redemption"
    notes: list[str] = field(default_factory=list)  # what the window rule could not reach
    #: product_id, category, brand of the products created before the training day (models that embed them)
    catalogue: pl.DataFrame | None = None
    embedding_note: str = ""  # where the training rows' embedding_affinity came from


def _labelled(con: duckdb.DuckDBPyConnection, start: date, end: date, label: str) -> pl.DataFrame:
    # selecting one label lets DuckDB drop the other's subquery (the purchase one joins every order line)
    sql = read_sql("metro_assets.ranking", "training_impressions")
    return con.sql(f"SELECT customer_id, offer_id, day, {LABELS[label]} AS label FROM ({sql}) ORDER BY ALL",
                   params={"window_start": start, "label_cutoff": end}).pl()


def choose_window(shown: pl.DataFrame, train_day: date, rule: WindowRule) -> tuple[TrainingWindow, list[str]]:
    """The smallest window (and validation weeks) that holds the positives ``rule`` asks for.

    ``shown`` holds the labelled impressions of the largest window (``max_weeks``);
    counting is done per week at once, no query per candidate window.
    """
    end = train_day - timedelta(days=LABEL_DAYS)
    weeks_back = (((pl.lit(end) - pl.col("day")).dt.total_days() - 1) // 7).alias("week")  # 0 = the newest week
    per_week = shown.group_by(weeks_back).agg(pl.col("label").sum()).sort("week")
    positives = np.zeros(rule.max_weeks + 1, dtype=np.int64)
    weeks_idx = per_week["week"].to_numpy()
    inside = weeks_idx <= rule.max_weeks
    positives[weeks_idx[inside]] = per_week["label"].to_numpy()[inside]
    notes = []
    # validation: the newest weeks, as many as needed, but never more than a third of all the positives
    # (training must keep twice as many) and never more than half the largest window
    cum = np.cumsum(positives)
    most = max(1, rule.max_weeks // 2)
    allowed = np.nonzero(cum[:most] <= cum[-1] / 3)[0]
    most = max(1, int(allowed[-1]) + 1 if allowed.size else 1)
    enough = np.nonzero(cum[:most] >= rule.min_validation_positives)[0]
    validation_weeks = int(enough[0]) + 1 if enough.size else most  # short: as many as it may take
    if not enough.size:
        notes.append(f"validation holds {int(cum[validation_weeks - 1])} positives over {validation_weeks} "
                     f"week(s), fewer than METRO_MIN_VALIDATION_POSITIVES={rule.min_validation_positives}")
    # training: weeks after validation, growing from the usual window, never past the oldest impression
    oldest = int(weeks_idx.max()) if weeks_idx.size else 0
    widest = min(rule.max_weeks, max(rule.weeks, oldest + 2))
    target = max(rule.target_train_positives or 0, rule.min_train_positives)
    for weeks in range(rule.weeks, widest + 1):
        train_weeks = weeks - 1 - validation_weeks  # the window spans weeks - 1 weeks of impressions
        train_positives = int(positives[validation_weeks: validation_weeks + max(train_weeks, 0)].sum())
        if train_positives >= target:
            break
    else:
        weeks = widest
        if train_positives < rule.min_train_positives:  # short of the target only: no warning, the window grew
            reach = (f"{widest} weeks (all the history there is)" if widest < rule.max_weeks
                     else f"{widest} weeks (METRO_TRAIN_MAX_WEEKS)")
            notes.append(f"training holds {train_positives} positives over {reach}, fewer than "
                         f"METRO_MIN_TRAIN_POSITIVES={rule.min_train_positives}")
    weeks = max(weeks, validation_weeks + 2)
    return TrainingWindow.ending(train_day, weeks, validation_weeks), notes


def training_set(con: duckdb.DuckDBPyConnection, train_day: date, weeks: int | WindowRule = 8,
                 negatives_per_positive: float = 4.0, seed: int = 42,
                 embedding: EmbeddingSettings = EmbeddingSettings()) -> TrainingSet:
    """Labelled impressions before ``train_day`` with point-in-time features.

    ``weeks`` is a fixed window in weeks, or a :class:`WindowRule` that grows
    the window until it holds enough positives. The rows' ``embedding_affinity``
    uses product vectors trained on purchases before the window starts (so a
    row of day d never sees vectors that learnt from day d on; see
    :func:`training_affinity`), unless ``embedding.feature`` is off.

    Raises
    ------
    DataError
        When the window holds no impressions or its training part no positive example.
    """
    rule = weeks if isinstance(weeks, WindowRule) else WindowRule(weeks=weeks, max_weeks=weeks,
                                                                   min_train_positives=0,
                                                                   min_validation_positives=0)
    notes: list[str] = []
    if rule.max_weeks > rule.weeks or rule.min_validation_positives > 0:
        widest = TrainingWindow.ending(train_day, rule.max_weeks)
        window, notes = choose_window(_labelled(con, widest.start, widest.end, rule.label), train_day, rule)
    else:
        window = TrainingWindow.ending(train_day, rule.weeks)
    shown = _labelled(con, window.start, window.end, rule.label)
    if shown.height == 0:
        raise DataError(f"no impressions shown between {window.start} and {window.end} to train the ranker "
                        f"for {train_day}: materialize the raw data of those days first")
    train = shown.filter(pl.col("day") < window.validation_start)
    positives = int(train["label"].sum())
    if positives == 0:
        what = "redemption" if rule.label == "redemption" else "purchase of the offer's product"
        raise DataError(f"no {what} followed the {train.height} impressions shown between {window.start} and "
                        f"{window.validation_start}: the ranker for {train_day} has no positive example "
                        "(METRO_TRAIN_MAX_WEEKS lets the window grow; METRO_TRAIN_LABEL=product_purchase "
                        "learns from purchases)")
    negatives = train.height - positives
    rate = min(1.0, negatives_per_positive * positives / max(negatives, 1))
    keep = np.random.default_rng([seed, train_day.toordinal()]).random(train.height) < rate
    train = train.filter(pl.Series(keep) | pl.col("label"))
    sample = pl.concat([train, shown.filter(pl.col("day") >= window.validation_start)])
    con.register("training_requests", sample.select("customer_id", "offer_id", "day").to_arrow())
    try:
        affinity = None
        if embedding.feature:
            frame, embedding_note = training_affinity(con, "training_requests", window.start, embedding)
            con.register("training_affinity_frame", frame.to_arrow())  # registered: replacement scans miss wrapped connections
            con.execute("CREATE OR REPLACE TEMP TABLE training_affinity AS SELECT * FROM training_affinity_frame")
            con.unregister("training_affinity_frame")
            affinity = "training_affinity"
        else:
            embedding_note = "embedding_affinity off (METRO_EMBEDDING_FEATURE=false)"
        features = feature_matrix(con, "training_requests", ids=True, affinity=affinity)  # + product_id, for Wide & Deep
    finally:
        con.unregister("training_requests")
        con.execute("DROP TABLE IF EXISTS training_affinity")
    # a fixed row order: the model must not depend on how the join happened to run
    sample = sample.join(features, on=["customer_id", "offer_id", "day"], how="left").sort(
        "day", "customer_id", "offer_id")
    return TrainingSet(
        train=sample.filter(pl.col("day") < window.validation_start),
        validation=sample.filter(pl.col("day") >= window.validation_start),
        sampling_rate=rate,
        window=window,
        label=rule.label,
        notes=notes,
        catalogue=con.sql("SELECT product_id, any_value(category) AS category, any_value(brand) AS brand "
                          "FROM products WHERE day < $day GROUP BY ALL ORDER BY product_id",
                          params={"day": train_day}).pl(),
        embedding_note=embedding_note,
    )


def training_affinity(con: duckdb.DuckDBPyConnection, requests: str, before: date,
                      embedding: EmbeddingSettings = EmbeddingSettings()) -> tuple[pl.DataFrame, str]:
    """``embedding_affinity`` of the training ``requests`` from vectors trained on purchases before ``before``.

    The stored versions were trained on purchases up to their own day, which
    can be later than a training row's day; these vectors are trained here, in
    memory, on the window before the first training row (not stored: the
    stored ``product_embeddings`` of a day are the ones scoring uses).
    """
    pv = train_item2vec(con, before, embedding)
    if pv is None:
        return pair_affinity(con, requests, None), f"embedding_affinity: no purchases before {before}, NULL"
    frame = pair_affinity(con, requests, pv, embedding)
    return frame, (f"embedding_affinity of the training rows: vectors trained on purchases before {before} "
                   f"({pv.metadata['seconds_training']} s)")


def ranker_features(train: pl.DataFrame) -> list[str]:
    """:data:`RANKER_FEATURES`, without ``embedding_affinity`` when the training rows have none
    (the feature off, or no vectors): a model then never asks scoring for it."""
    if "embedding_affinity" in train.columns and train["embedding_affinity"].null_count() < train.height:
        return list(RANKER_FEATURES)
    return [f for f in RANKER_FEATURES if f != "embedding_affinity"]


def as_matrix(frame: pl.DataFrame, features: list[str] = RANKER_FEATURES) -> np.ndarray:
    """The feature columns as a float matrix (NaN for missing values)."""
    return frame.select(pl.col(features).cast(pl.Float64)).to_numpy()


@dataclass
class TrainedModel:
    """One trained candidate model with its validation figures."""

    stored: models.StoredModel
    metrics: dict
    selected: bool = False
    seconds: float | None = None   # training time (wall clock)


def _train_wide_deep(ts: TrainingSet, y: np.ndarray, yv: np.ndarray, deep: DeepSettings) -> tuple[
        TrainedModel | None, str]:
    """Wide & Deep when PyTorch can run here; else None and the one-line reason it was skipped."""
    status = deep_status(deep)
    if not status.available:
        return None, f"{WIDE_DEEP_KIND} skipped: {status.reason}"
    from metro_assets.ranking.wide_deep import train_wide_deep

    features = [*ranker_features(ts.train), *ID_FEATURES]
    Xv = as_matrix(ts.validation, features)
    started = time.perf_counter()
    fitted = train_wide_deep(as_matrix(ts.train, features), y, features, ts.sampling_rate, ts.catalogue,
                             Xv, yv, device=status.device)
    seconds = time.perf_counter() - started
    fit = fitted.report
    stored = models.StoredModel(WIDE_DEEP_KIND, fitted.blob, features, ts.sampling_rate, fitted.importances)
    p = models.load(stored).predict(Xv) if len(yv) else np.zeros(0)
    note = f"{WIDE_DEEP_KIND}: best of {fit.epochs} epochs at {fit.best_epoch} ({fit.stopped})"
    return TrainedModel(stored, validation_figures(ts.validation, p), seconds=seconds), note


def validation_figures(validation: pl.DataFrame, p: np.ndarray) -> dict:
    """What the selection rule reads of a kind's scores ``p`` of the validation rows: the global AUC and
    log-loss (:func:`models.validation_metrics`) and the within-customer figures
    (:func:`selection.ranking_metrics`: grouped AUC, NDCG@10, customers counted, per-customer AUCs)."""
    y = validation["label"].to_numpy().astype(int)
    return {**models.validation_metrics(y, p), **selection.ranking_metrics(validation, p)}


def best_model(trained: list[TrainedModel]) -> TrainedModel:
    """The one selection rule over any number of kinds: the champion kind serves unless another ranks better.

    The kinds are taken in the order of :data:`selection.PREFERENCE` (the blend,
    LightGBM, logistic regression, Wide & Deep: the best pool ranker on the tuning seeds first) and
    :func:`models.better` is applied down that list: a later kind takes over
    only when it ranks the validation week's customers' shown offers better
    (per-customer grouped AUC, paired, by more than the tie) than the
    incumbent; where the week cannot compare them within customers, by the
    global AUC/log-loss. The incumbent wins ties.
    """
    order = selection.preference_order([m.stored.kind for m in trained])
    best = trained[order[0]]
    for i in order[1:]:
        if models.better(trained[i].metrics, best.metrics):
            best = trained[i]
    return best


def selection_reason(best: TrainedModel, trained: list[TrainedModel]) -> str:
    """One line: which kind serves and by which figure (grouped AUC of every kind, or the global fallback)."""
    others = [m for m in trained if m is not best]
    if all(models.ranks_within_customers(best.metrics, m.metrics) for m in others):
        figures = ", ".join(f"{m.stored.kind} {m.metrics['grouped_auc']:.4f}" for m in trained)
        # the kinds the serving one does not beat by more than the tie (it may still serve: it came first,
        # or it beat the kind that was serving when its turn came)
        tied = [m.stored.kind for m in others if not models.better(best.metrics, m.metrics)]
        why = ("ranks the validation week's customers best" if not tied else
               "serves by the champion rule (the blend first; a later kind takes over only when it ranks "
               f"better than the serving one by more than {selection.TIE_Z:g} paired standard errors); "
               "not separated from " + ", ".join(tied))
        return (f"{best.stored.kind}: {why} (grouped AUC {figures}; "
                f"{best.metrics['ranking_customers']} customers with a redemption and a non-redeemed offer)")
    counted = min(m.metrics.get("ranking_customers", 0) for m in trained)
    return (f"{best.stored.kind}: better validation AUC/log-loss (fallback: {counted} customers with a redemption "
            f"and a non-redeemed offer, fewer than {selection.MIN_RANKING_CUSTOMERS} to compare within customers)")


def train_rankers(ts: TrainingSet, deep: DeepSettings | None = None) -> tuple[list[TrainedModel], str]:
    """Train every kind, validate on the last week, and mark the best one selected.

    LightGBM and the logistic regression always train, and their blend
    (:func:`models.blend`: the mean of their log-odds) is kept as a kind of its
    own; Wide & Deep trains when ``deep`` is given and PyTorch can run
    (:func:`metro_assets.deep.deep_status`), else the reason it was skipped is
    said in the selection reason. The best validated kind serves
    (:func:`models.better`, in the order of :data:`selection.PREFERENCE`: the
    blend, LightGBM, logistic regression, Wide & Deep; a later kind must beat the earlier ones).
    When the validation week cannot separate them (no impressions, or only one
    class), the logistic regression serves: with so little signal the simpler
    model is the safer choice. Returns the models and the reason for the choice.
    """
    features = ranker_features(ts.train)
    X, y = as_matrix(ts.train, features), ts.train["label"].to_numpy().astype(int)
    Xv, yv = as_matrix(ts.validation, features), ts.validation["label"].to_numpy().astype(int)
    trained = []
    for train in (models.train_lightgbm, models.train_logistic_regression):
        started = time.perf_counter()
        stored = train(X, y, list(features), ts.sampling_rate)
        seconds = time.perf_counter() - started
        p = models.load(stored).predict(Xv) if len(yv) else np.zeros(0)
        trained.append(TrainedModel(stored, validation_figures(ts.validation, p), seconds=seconds))
    both = models.blend([m.stored for m in trained])
    p = models.load(both).predict(Xv) if len(yv) else np.zeros(0)
    trained.append(TrainedModel(both, validation_figures(ts.validation, p), seconds=sum(m.seconds for m in trained)))
    deep_note = ""
    if deep is not None:
        wide_deep, deep_note = _train_wide_deep(ts, y, yv, deep)
        if wide_deep is not None:
            trained.append(wide_deep)
    lgbm, lr = trained[:2]
    if lgbm.metrics["auc"] is None:
        lr.selected = True
        reason = ("WARNING: not validated: the validation weeks hold "
                  + ("no impressions" if len(yv) == 0 else f"{int(yv.sum())} positives of {len(yv)} (a single class)")
                  + "; logistic regression serves by default, unvalidated")
    else:
        best = best_model(trained)
        best.selected, reason = True, selection_reason(best, trained)
    if deep_note:
        reason += f"; {deep_note}"
    if ts.label != "redemption":
        reason += f"; trained on label {ts.label}"
    if ts.notes:
        reason += "; WARNING: " + "; ".join(ts.notes)
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
                "validation_grouped_auc": m.metrics.get("grouped_auc"),
                "validation_ndcg_at_10": m.metrics.get("ndcg_at_10"),
                "validation_ranking_customers": m.metrics.get("ranking_customers"),
                "importances": json.dumps(m.stored.importances),
                "selection_reason": reason,
                "train_seconds": m.seconds,
            }
            for m in trained
        ]
    )
