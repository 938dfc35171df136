"""Uplift learners: what showing an offer *causes*, learned from randomised exposure only.

The training set (:func:`uplift_training_set`) holds only units whose
exposure was decided by a coin: **treated** = exploration slots (an offer
drawn at random from the customer's eligible offers), **control** = customers
of the randomised holdout, who see nothing, each with offers drawn the same
way from what they were eligible for. The outcome is a purchase of the
offer's product within 7 days (a redemption needs the offer, so only the
purchase is comparable across the arms). The treatment share ``e`` is the
design's, read from the data (a constant: both arms are randomised).
Features are the rankers' own (point in time, as of each unit's day).

Learners, each a :class:`UpliftModel` of LightGBM boosters stored as text:

* ``uplift_s`` (S-learner): one classifier on features + treatment;
  tau(x) = f(x, 1) - f(x, 0).
* ``uplift_t`` (T-learner): a classifier per arm; tau = mu1(x) - mu0(x).
* ``uplift_x`` (X-learner): the T-learner's arms impute each unit's effect
  (treated: y - mu0(x), control: mu1(x) - y), a regression per arm learns it,
  and tau = e x tau0(x) + (1 - e) x tau1(x).
* ``uplift_to`` (transformed outcome): one regression on
  z = y (t - e) / (e (1 - e)), whose expectation is tau(x).

An exploration slot sits at a random position, and a slot at position r is
noticed ``position_attention(r)`` times as often as the top one, so the
learned effect is the average over the slots; predictions are divided by
the mean attention of the treated units' positions, giving the effect of an
offer at position 1 (the unit the allocation and the oracle use).

Why own code, not causalml / scikit-uplift (checked for issue 17): neither
is in the shared environment; causalml pins older numpy/scipy-era builds and
pulls in a large dependency tree (torch-free but with Cython extensions and
forestci/pathos), and scikit-uplift 0.5 (last release 2022) wraps
scikit-learn estimators with pickling as its storage. The four meta-learners
are ~100 lines over the LightGBM the project already uses, and are stored as
LightGBM text like the rankers (no pickle).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(6000, 2)); t = rng.random(6000) < 0.5
>>> y = (rng.random(6000) < 0.1 + 0.15 * t * (X[:, 0] > 0)).astype(int)
>>> m = train_learner("uplift_t", X, t, y, ["a", "b"], attention=1.0)
>>> tau = m.predict(np.array([[1.0, 0.0], [-1.0, 0.0]]))
>>> bool(tau[0] > tau[1])
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import duckdb
import lightgbm as lgb
import numpy as np
import polars as pl

from metro_assets.candidates.retrieval import segment_in_scope, store_in_scope
from metro_assets.errors import DataError
from metro_assets.features.compute import feature_matrix
from metro_assets.monitoring.qini import qini_logged
from metro_assets.ranking.models import StoredModel
from metro_assets.ranking.training import RANKER_FEATURES, TrainingWindow, as_matrix
from metro_assets.simulation.oracle import position_attention
from metro_assets.warehouse import read_sql

UPLIFT_KINDS = ("uplift_s", "uplift_t", "uplift_x", "uplift_to")
#: Shallower, more regularised trees than the ranker's: the signal (a difference of two small rates) is weak.
PARAMS = {
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_child_samples": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "num_threads": 1,
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}
ROUNDS = 60  # few trees: scoring a 5M-pair pool costs trees x rows; validation Qini within noise of 150 at 0.05
CONTROL_PER_TREATED = 2.0   # control units drawn per treated unit (the holdout is large; more controls cost little)
CONTROL_OFFERS_PER_DAY = 3  # offers drawn per sampled holdout customer-day


@dataclass
class UpliftSet:
    """The randomised units of a training day: features, treatment, outcome."""

    units: pl.DataFrame      # customer_id, offer_id, day, treated, position, purchased, features
    window: TrainingWindow   # [start, validation_start) trains, [validation_start, end) validates
    attention: float         # mean position attention of the treated units (learned effect -> position 1)

    @property
    def train(self) -> pl.DataFrame:
        return self.units.filter(pl.col("day") < self.window.validation_start)

    @property
    def validation(self) -> pl.DataFrame:
        return self.units.filter(pl.col("day") >= self.window.validation_start)


def uplift_units(con: duckdb.DuckDBPyConnection, start: date, end: date, seed: int = 42) -> pl.DataFrame:
    """Treated and control units of impression days [start, end) with their outcome (no features)."""
    sql = (read_sql("metro_assets.ranking", "uplift_units")
           .replace("{store_ok}", store_in_scope("f.store_scope", "h.home_store_id"))
           .replace("{segment_ok}", segment_in_scope("f.segment_scope", "h.segment")))
    treated = con.sql("SELECT count(*) FROM (SELECT DISTINCT customer_id, offer_id, day FROM impressions "
                      "WHERE is_exploration AND day >= $s AND day < $e)", params={"s": start, "e": end}).fetchall()[0][0]
    holdout_days = con.sql("""SELECT coalesce(sum(datediff('day', greatest(from_date, $s::DATE),
                                                            least(to_date, $e::DATE - 1)) + 1), 0)
                              FROM experiment_assignments WHERE arm = 'holdout' AND to_date >= $s AND from_date < $e""",
                           params={"s": start, "e": end}).fetchall()[0][0]
    want = CONTROL_PER_TREATED * treated / CONTROL_OFFERS_PER_DAY
    rate_ppm = int(min(1.0, want / holdout_days) * 1_000_000) if holdout_days else 0
    return con.sql(sql, params={"window_start": start, "label_cutoff": end, "rate_ppm": rate_ppm,
                                "per_day": CONTROL_OFFERS_PER_DAY, "seed": seed}).pl()


def uplift_training_set(con: duckdb.DuckDBPyConnection, train_day: date, weeks: int = 26,
                        validation_weeks: int = 3, seed: int = 42) -> UpliftSet:
    """The randomised units of the ``weeks`` before ``train_day`` whose 7-day outcome closed before it.

    Raises
    ------
    DataError
        No exploration slot or no holdout customer in the window (an import without them).
    """
    window = TrainingWindow.ending(train_day, weeks, validation_weeks)
    units = uplift_units(con, window.start, window.end, seed)
    n_t = int(units["treated"].sum()) if units.height else 0
    if n_t == 0 or n_t == units.height:
        raise DataError(f"no {'exploration slots' if n_t == 0 else 'holdout customers'} between {window.start} and "
                        f"{window.end}: the uplift learners for {train_day} need impressions.is_exploration and "
                        "experiment_assignments (randomised exposure)")
    con.register("uplift_requests", units.select("customer_id", "offer_id", "day").unique().to_arrow())
    try:
        features = feature_matrix(con, "uplift_requests")
    finally:
        con.unregister("uplift_requests")
    units = units.join(features, on=["customer_id", "offer_id", "day"], how="left").sort(
        "day", "customer_id", "offer_id", "treated")
    positions = units.filter(pl.col("treated"))["position"].fill_null(1).to_numpy()
    return UpliftSet(units, window, float(position_attention(positions).mean()))


class UpliftModel:
    """A trained uplift learner: boosters by role, the treatment share, the position scale."""

    def __init__(self, kind: str, boosters: dict[str, lgb.Booster], features: list[str], propensity: float,
                 attention: float):
        self.kind, self.boosters, self.features = kind, boosters, features
        self.propensity, self.attention = propensity, attention

    def effect(self, X: np.ndarray) -> np.ndarray:
        """The learned effect of the average exploration slot (before the position scale)."""
        b = self.boosters
        if self.kind == "uplift_s":
            ones, zeros = np.ones((len(X), 1)), np.zeros((len(X), 1))
            return b["f"].predict(np.hstack([X, ones])) - b["f"].predict(np.hstack([X, zeros]))
        if self.kind == "uplift_t":
            return b["mu1"].predict(X) - b["mu0"].predict(X)
        if self.kind == "uplift_x":
            e = self.propensity
            return e * b["tau0"].predict(X) + (1.0 - e) * b["tau1"].predict(X)
        if self.kind == "uplift_to":
            return b["z"].predict(X)
        raise ValueError(f"unknown uplift kind {self.kind!r}")

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted uplift of each row's offer shown at position 1 (incremental purchase probability)."""
        return self.effect(X) / self.attention

    def stored(self, importances: dict[str, float] | None = None) -> StoredModel:
        """The model as a ``model_versions`` row holds it: JSON of LightGBM model texts, no pickle."""
        blob = json.dumps({"propensity": self.propensity, "attention": self.attention,
                           "boosters": {role: b.model_to_string() for role, b in self.boosters.items()}})
        return StoredModel(self.kind, blob, list(self.features), 1.0, importances or {})


def load(stored: StoredModel) -> UpliftModel:
    """Rebuild an uplift learner from its stored form."""
    if stored.kind not in UPLIFT_KINDS:
        raise ValueError(f"{stored.kind!r} is not an uplift learner ({', '.join(UPLIFT_KINDS)})")
    x = json.loads(stored.blob)
    boosters = {role: lgb.Booster(model_str=text) for role, text in x["boosters"].items()}
    return UpliftModel(stored.kind, boosters, list(stored.features), x["propensity"], x["attention"])


def _fit(X: np.ndarray, y: np.ndarray, objective: str, names: list[str]) -> lgb.Booster:
    # leaves of ~1% of the rows (20..200): a small log (tiny scale, a young import) still gets splits
    leaf = int(np.clip(len(y) // 100, 20, PARAMS["min_child_samples"]))
    return lgb.train({**PARAMS, "objective": objective, "min_child_samples": leaf},
                     lgb.Dataset(X, label=y, feature_name=names), num_boost_round=ROUNDS)


def train_learner(kind: str, X: np.ndarray, treated: np.ndarray, y: np.ndarray, features: list[str],
                  attention: float) -> UpliftModel:
    """Fit one learner of ``kind`` on features ``X``, treatment ``treated`` (bool) and outcome ``y`` (0/1)."""
    t = np.asarray(treated, dtype=bool)
    y = np.asarray(y, dtype=float)
    e = float(t.mean())
    if kind == "uplift_s":
        boosters = {"f": _fit(np.hstack([X, t[:, None].astype(float)]), y, "binary", [*features, "treated"])}
    elif kind in ("uplift_t", "uplift_x"):
        mu1, mu0 = _fit(X[t], y[t], "binary", features), _fit(X[~t], y[~t], "binary", features)
        boosters = {"mu1": mu1, "mu0": mu0}
        if kind == "uplift_x":
            d1 = y[t] - mu0.predict(X[t])     # treated: what happened minus what control would have done
            d0 = mu1.predict(X[~t]) - y[~t]   # control: what treatment would have done minus what happened
            boosters = {"tau1": _fit(X[t], d1, "regression", features), "tau0": _fit(X[~t], d0, "regression", features)}
    elif kind == "uplift_to":
        z = y * (t - e) / (e * (1.0 - e))
        boosters = {"z": _fit(X, z, "regression", features)}
    else:
        raise ValueError(f"unknown uplift kind {kind!r}")
    return UpliftModel(kind, boosters, features, e, attention)


@dataclass
class TrainedUplift:
    model: UpliftModel
    validation_qini: float | None   # Qini of its predictions on the validation weeks' randomised units
    best: bool = False


def train_uplift_learners(us: UpliftSet, kinds: tuple[str, ...] = UPLIFT_KINDS) -> list[TrainedUplift]:
    """Every learner on the training weeks, scored by Qini on the validation weeks; the best is marked."""
    train, val = us.train, us.validation
    X, t, y = as_matrix(train), train["treated"].to_numpy(), train["purchased"].to_numpy().astype(float)
    Xv, tv, yv = as_matrix(val), val["treated"].to_numpy(), val["purchased"].to_numpy().astype(float)
    if not t.any() or t.all():  # a T- or X-learner fits one model per arm: an empty arm has nothing to fit
        raise DataError(f"the uplift training weeks hold {len(t)} units, {int(t.sum())} of them treated: "
                        "uplift learners need treated and control units (a young log, or no holdout yet)")
    out = []
    for kind in kinds:
        model = train_learner(kind, X, t, y, list(RANKER_FEATURES), us.attention)
        q = qini_logged(model.predict(Xv), tv, yv) if tv.any() and (~tv).any() else None
        out.append(TrainedUplift(model, q))
    scored = [m for m in out if m.validation_qini is not None]
    (max(scored, key=lambda m: m.validation_qini) if scored else out[0]).best = True
    return out


def model_rows(train_day: date, us: UpliftSet, trained: list[TrainedUplift]) -> pl.DataFrame:
    """``model_versions`` rows of the uplift learners (never ``selected``: the ranker serves p_redeem)."""
    train, val = us.train, us.validation
    rows = []
    for m in trained:
        stored = m.model.stored()
        q = "n/a" if m.validation_qini is None else f"{m.validation_qini:.5f}"
        rows.append({
            "model_version": f"{train_day}-{m.model.kind}", "day": train_day, "kind": m.model.kind,
            "selected": False, "model": stored.blob, "features": stored.features,
            "train_start": us.window.start, "validation_start": us.window.validation_start,
            "train_end": us.window.end, "negative_sampling_rate": 1.0,
            "train_rows": train.height, "train_positives": int(train["purchased"].sum()),
            "validation_rows": val.height, "validation_positives": int(val["purchased"].sum()),
            "validation_auc": None, "validation_log_loss": None, "validation_qini": m.validation_qini,
            "best_uplift": m.best, "importances": json.dumps({}),
            "selection_reason": (f"uplift learner on {int(train['treated'].sum())} exploration slots and "
                                 f"{int((~train['treated']).sum())} holdout units; validation Qini {q}"
                                 + ("; the best uplift learner (used by METRO_OBJECTIVE=incremental_margin)"
                                    if m.best else "")),
        })
    return pl.DataFrame(rows)


def newest_uplift(con: duckdb.DuckDBPyConnection, day: date, kind: str | None = None) -> tuple[str, UpliftModel] | None:
    """The newest uplift learner trained on or before ``day`` (the best one, or the given kind); None: none."""
    rows = con.execute(
        "SELECT model_version, kind, model, features FROM model_versions "
        "WHERE day <= $day AND kind LIKE 'uplift_%' AND (CASE WHEN $kind IS NULL THEN best_uplift ELSE kind = $kind END) "
        "ORDER BY day DESC LIMIT 1", {"day": day, "kind": kind}).fetchall()
    if not rows:
        return None
    version, kind, blob, features = rows[0]
    return version, load(StoredModel(kind, blob, list(features), 1.0, {}))

