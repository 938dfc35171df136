"""The rankers (logistic regression, LightGBM, their blend and Wide & Deep), stored as text, not pickles.

A trained model becomes a :class:`StoredModel`: its kind, a text blob (LightGBM's
own model format, the logistic regression's coefficients as JSON, a blend's
parts as JSON, or Wide & Deep's configuration and safetensors weights, see
:mod:`.wide_deep`), the feature list and the negative-sampling rate used in training. Any host with
this package can rebuild and run it from a warehouse row; no pickle path.

Scores are probabilities: LightGBM trains with the plain binary objective (no
class reweighting) and both models' odds are corrected for the sampled-away
negatives: ``odds_true = rate * odds_sampled``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 2)); y = (X[:, 0] + rng.normal(size=400) > 1).astype(int)
>>> model = train_logistic_regression(X, y, ["a", "b"], sampling_rate=1.0)
>>> p = load(model).predict(X)
>>> bool(((p >= 0) & (p <= 1)).all())
True
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from metro_assets.deep import MISSING_TORCH
from metro_assets.errors import DataError

#: Small, heavily regularised trees: a demo-scale week holds only ~1,000 positives, and 31-leaf trees learnt
#: its noise (tuning seed 42, 2025-11-06: 0.57 of the oracle with 31 leaves, 0.71 with these). 120 rounds at
#: 0.05 ranked as well as 300 at 0.02 on four tuning evaluations (0.694 vs 0.697) and score 2.5x faster.
LIGHTGBM_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_child_samples": 100,
    "feature_fraction": 0.6,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "num_threads": 1,  # ~30k rows train in 2-3 s; 2 threads spin-wait on a busy 2-core box (6-170 s measured)
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}
LIGHTGBM_ROUNDS = 120


@dataclass(frozen=True)
class StoredModel:
    """A trained ranker as it is stored in ``model_versions``."""

    kind: str              # "lightgbm" | "logistic_regression" | "blend" | "wide_deep"
    blob: str              # the model as text
    features: list[str]
    sampling_rate: float   # share of negatives kept in training
    importances: dict[str, float]


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-margin))


def train_lightgbm(X: np.ndarray, y: np.ndarray, features: list[str], sampling_rate: float) -> StoredModel:
    """Gradient-boosted trees, binary objective, NaN handled natively."""
    booster = lgb.train(LIGHTGBM_PARAMS, lgb.Dataset(X, label=y, feature_name=features, free_raw_data=True),
                        num_boost_round=LIGHTGBM_ROUNDS)
    gain = booster.feature_importance(importance_type="gain")
    total = gain.sum() or 1.0
    return StoredModel("lightgbm", booster.model_to_string(), features, sampling_rate,
                       {f: float(g / total) for f, g in zip(features, gain)})


def train_logistic_regression(X: np.ndarray, y: np.ndarray, features: list[str], sampling_rate: float) -> StoredModel:
    """Standardised logistic regression; missing values become the median plus a missing flag."""
    with warnings.catch_warnings():  # an all-missing column (e.g. no discounts imported) has no median
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0)
    medians = np.where(np.isfinite(medians), medians, 0.0)
    Z = _lr_design(X, medians)
    mean, scale = Z.mean(axis=0), Z.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    lr = LogisticRegression(C=1.0, max_iter=1000)
    lr.fit((Z - mean) / scale, y)
    names = features + [f"{f}_missing" for f in features]
    coef = lr.coef_[0]
    blob = json.dumps({"medians": medians.tolist(), "mean": mean.tolist(), "scale": scale.tolist(),
                       "coef": coef.tolist(), "intercept": float(lr.intercept_[0])})
    return StoredModel("logistic_regression", blob, features, sampling_rate,
                       {n: float(c) for n, c in zip(names, coef) if c != 0 or not n.endswith("_missing")})


BLEND = "blend"
#: The kinds a blend is made of: those with a log-odds :func:`raw_score`.
BLENDABLE = ("lightgbm", "logistic_regression")


def blend(parts: list[StoredModel]) -> StoredModel:
    """One model whose log-odds are the mean of ``parts``' (trained on the same rows, same features).

    LightGBM and the logistic regression err differently (trees cut the features into steps, the linear model
    extrapolates smoothly); on the six tuning evaluations their blend ranked the day's pool better than either
    part in all six (docs/EVALUATION.md, "The blend, and more weeks when positives are few"). Its importances
    are the mean of the parts' shares of absolute importance.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 2)); y = (X[:, 0] + rng.normal(size=400) > 1).astype(int)
    >>> parts = [train_logistic_regression(X, y, ["a", "b"], 1.0), train_lightgbm(X, y, ["a", "b"], 1.0)]
    >>> both = load(blend(parts)).predict(X)
    >>> logit = lambda p: np.log(p / (1 - p))
    >>> bool(np.allclose(logit(both), np.mean([logit(load(m).predict(X)) for m in parts], axis=0)))
    True
    """
    if len(parts) < 2 or any(m.kind not in BLENDABLE for m in parts):
        raise ValueError(f"a blend needs two or more parts of kinds {', '.join(BLENDABLE)}, "
                         f"not {[m.kind for m in parts]}")
    first = parts[0]
    if any(m.features != first.features or m.sampling_rate != first.sampling_rate for m in parts):
        raise ValueError("a blend's parts must share their features and sampling rate")
    shares = []
    for m in parts:  # a feature's missing flag (the logistic regression's) counts toward the feature
        magnitude = {f: abs(m.importances.get(f, 0.0)) + abs(m.importances.get(f"{f}_missing", 0.0))
                     for f in first.features}
        total = sum(magnitude.values()) or 1.0
        shares.append({f: magnitude[f] / total for f in first.features})
    importances = {f: float(np.mean([s[f] for s in shares])) for f in first.features}
    blob = json.dumps({"parts": [{"kind": m.kind, "blob": m.blob} for m in parts]})
    return StoredModel(BLEND, blob, list(first.features), first.sampling_rate, importances)


#: Rows the logistic regression scores at a time: measured 0.8 s per million rows in chunks vs 3.1 s at
#: once (full-size temporaries of a 5M-pair pool do not fit in cache).
LR_ROWS_PER_CHUNK = 65_536


def _lr_design(X: np.ndarray, medians: np.ndarray) -> np.ndarray:
    missing = ~np.isfinite(X)
    return np.hstack([np.where(missing, medians, X), missing.astype(float)])


class LoadedModel:
    """A stored model ready to score a feature matrix (columns in ``features`` order)."""

    def __init__(self, stored: StoredModel):
        self.stored = stored
        self._paths = None  # LightGBM's per-leaf path table, built on the first explain
        if stored.kind == "lightgbm":
            self._booster = lgb.Booster(model_str=stored.blob)
        elif stored.kind == "logistic_regression":
            self._lr = {k: np.asarray(v) for k, v in json.loads(stored.blob).items()}
        elif stored.kind == BLEND:
            self._parts = [LoadedModel(StoredModel(part["kind"], part["blob"], stored.features, stored.sampling_rate,
                                                   {})) for part in json.loads(stored.blob)["parts"]]
        elif stored.kind == "wide_deep":
            if importlib.util.find_spec("torch") is None:
                raise DataError(f"a wide_deep model cannot score here: {MISSING_TORCH}")
            from metro_assets.ranking import wide_deep

            self._wide_deep = wide_deep.load(stored.blob)
        else:
            raise ValueError(f"unknown model kind {stored.kind!r}")

    def explain(self, X: np.ndarray) -> "Contributions | None":
        """Each feature's contribution to each row's raw score; None when this kind has no explainer.

        Meant for the few rows that are shown (each customer's top 10), not a
        whole pool: LightGBM's exact contributions cost ~1 ms a row.
        """
        explainer = EXPLAINERS.get(self.stored.kind)
        return None if explainer is None else explainer(self, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(redemption within 7 days) for each row: the sigmoid of :func:`raw_score`.

        The raw score undoes negative subsampling on the log-odds (odds_true = rate x odds_sampled), which
        stays exact where a probability near 1 would round.
        """
        if self.stored.kind == "wide_deep":  # its own correction, on the logit
            return self._wide_deep.predict(X, self.stored.sampling_rate)
        return _sigmoid(raw_score(self, X))


@dataclass(frozen=True)
class Contributions:
    """Each feature's share of each row's raw score, the log-odds of :meth:`LoadedModel.predict`.

    ``values.sum(axis=1) + bias`` is the raw score: ``logit(predict(X))``, the
    negative-sampling correction (``log(sampling_rate)``) included in ``bias``.
    A kind may explain with names other than its input features (e.g. crossed
    features); the reasons use the names they know and skip the others.
    """

    features: list[str]   # the column names of ``values``
    values: np.ndarray    # (rows, features), log-odds
    bias: np.ndarray      # (rows,), log-odds: what every row starts from


def raw_score(model: LoadedModel, X: np.ndarray) -> np.ndarray:
    """The log-odds behind :meth:`LoadedModel.predict`, for LR, LightGBM and their blend."""
    if model.stored.kind == BLEND:  # each part's own log-odds carry the sampling correction
        return np.mean([raw_score(part, X) for part in model._parts], axis=0)
    if model.stored.kind == "lightgbm":
        margin = model._booster.predict(X, raw_score=True, num_threads=2)
    elif model.stored.kind == "logistic_regression":
        margin = np.empty(len(X))
        for i in range(0, len(X), LR_ROWS_PER_CHUNK):  # a loop over chunks: temporaries stay in cache
            rows = slice(i, i + LR_ROWS_PER_CHUNK)
            margin[rows] = _lr_standardised(model, X[rows]) @ model._lr["coef"] + model._lr["intercept"]
    else:
        raise ValueError(f"no raw score for model kind {model.stored.kind!r}")
    return margin + np.log(model.stored.sampling_rate)


def _lr_standardised(model: LoadedModel, X: np.ndarray) -> np.ndarray:
    lr = model._lr
    return (_lr_design(X, lr["medians"]) - lr["mean"]) / lr["scale"]


def explain_logistic_regression(model: LoadedModel, X: np.ndarray) -> Contributions:
    """Coefficient x standardised value per feature; a feature's missing flag counts toward the feature."""
    terms = _lr_standardised(model, X) * model._lr["coef"]
    n = len(model.stored.features)
    bias = np.full(len(X), float(model._lr["intercept"]) + np.log(model.stored.sampling_rate))
    return Contributions(list(model.stored.features), terms[:, :n] + terms[:, n:], bias)


def explain_lightgbm_shap(model: LoadedModel, X: np.ndarray) -> Contributions:
    """LightGBM's exact TreeSHAP contributions (``pred_contrib=True``); its expected value is the bias.

    Measured on the default world's model (300 trees, 31 features): 300 rows/s on the busy 2-core box,
    ~2k rows/s on a quiet one, so a day's top 10 (490k rows) would take 4 to 27 minutes: fine for
    explaining one customer on demand, too slow for the daily pipeline (see :func:`explain_lightgbm`).
    """
    contrib = np.asarray(model._booster.predict(X, pred_contrib=True, num_threads=2))
    bias = contrib[:, -1] + np.log(model.stored.sampling_rate)
    return Contributions(list(model.stored.features), contrib[:, :-1], bias)


def _path_table(booster: lgb.Booster, n_features: int) -> tuple[np.ndarray, float, int]:
    """Per (tree, leaf): what each feature's splits on the root-to-leaf path added to the tree's output.

    Returns the table (trees * width, features), the sum of the trees' root values (the bias) and
    ``width`` (the most leaves of a tree), so that row ``tree * width + leaf`` is that leaf's path.
    A loop over the trees' nodes (~20k), once per loaded model; never over rows.
    """
    trees = booster.dump_model()["tree_info"]
    width = max(t["num_leaves"] for t in trees)
    table = np.zeros((len(trees) * width, n_features))
    bias = 0.0
    for t, tree in enumerate(trees):
        root = tree["tree_structure"]
        start = root.get("internal_value", root.get("leaf_value", 0.0))
        bias += start
        stack = [(root, start, np.zeros(n_features))]
        while stack:
            node, value, path = stack.pop()
            if "leaf_index" in node or "split_feature" not in node:
                table[t * width + node.get("leaf_index", 0)] = path
                continue
            for child in (node["left_child"], node["right_child"]):
                child_value = child.get("internal_value", child.get("leaf_value"))
                step = path.copy()
                step[node["split_feature"]] += child_value - value  # the split's feature moved the output
                stack.append((child, child_value, step))
    return table, bias, width


#: Rows whose path contributions are summed at a time (bounds the (rows, trees) leaf index in memory).
PATH_ROWS_PER_CHUNK = 65_536


def explain_lightgbm(model: LoadedModel, X: np.ndarray) -> Contributions:
    """LightGBM's decision-path contributions: each split credits its feature with the output change it makes.

    Exactly additive like TreeSHAP (the contributions plus the trees' root values are the raw score),
    from the leaf each row reaches in each tree (``pred_leaf``, as fast as scoring) and a per-leaf table;
    measured ~60x faster than ``pred_contrib`` on the default model, which would take minutes for a
    day's top 10 (:func:`explain_lightgbm_shap`). Unlike TreeSHAP it credits features split near the
    root a little more; the reasons use only the two or three strongest groups.
    """
    if model._paths is None:
        model._paths = _path_table(model._booster, len(model.stored.features))
    table, bias, width = model._paths
    out = np.zeros((len(X), table.shape[1]))
    for i in range(0, len(X), PATH_ROWS_PER_CHUNK):  # a loop over chunks of rows, then over trees
        leaves = np.asarray(model._booster.predict(X[i:i + PATH_ROWS_PER_CHUNK], pred_leaf=True, num_threads=2))
        rows = leaves.reshape(len(leaves), -1).astype(np.int64) + np.arange(leaves.shape[-1] if leaves.ndim > 1
                                                                             else 1) * width
        chunk = out[i:i + PATH_ROWS_PER_CHUNK]
        for t in range(rows.shape[1]):
            chunk += table[rows[:, t]]
    return Contributions(list(model.stored.features), out,
                         np.full(len(X), bias + np.log(model.stored.sampling_rate)))


def explain_blend(model: LoadedModel, X: np.ndarray) -> Contributions | None:
    """The mean of the parts' contributions (each part explains its own log-odds over the same features), so
    they add up to the blend's log-odds exactly; None when a part has no explainer."""
    parts = [part.explain(X) for part in model._parts]
    if any(c is None for c in parts):
        return None
    return Contributions(list(model.stored.features), np.mean([c.values for c in parts], axis=0),
                         np.mean([c.bias for c in parts], axis=0))


def explain_wide_deep(model: LoadedModel, X: np.ndarray) -> Contributions:
    """Wide & Deep's wide part (weight x standardised value per feature, missing flag included, and one term per
    crossed feature) plus its deep part as one ``deep`` term; the reasons use the feature names they know.

    Exactly additive: the values plus the bias are the logit of :meth:`LoadedModel.predict` (float32 network).
    """
    values, bias = model._wide_deep.explain(X, model.stored.sampling_rate)
    return Contributions(model._wide_deep.contribution_names(), values, np.full(len(X), bias))


#: model kind -> its explain function ``f(loaded_model, X) -> Contributions``. A new kind registers its
#: own here; a kind without one gets no contributions
#: and its recommendations fall back to the candidate strategy's reason (ranking/reasons.py).
EXPLAINERS: dict[str, Callable[[LoadedModel, np.ndarray], "Contributions | None"]] = {
    "logistic_regression": explain_logistic_regression,
    "lightgbm": explain_lightgbm,
    BLEND: explain_blend,
    "wide_deep": explain_wide_deep,
}


def load(stored: StoredModel) -> LoadedModel:
    """Rebuild a model from its stored form."""
    return LoadedModel(stored)


def validation_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """AUC and log-loss; AUC is undefined (None) when the week holds one class only."""
    if len(np.unique(y)) < 2:
        return {"auc": None, "log_loss": None}
    return {"auc": float(roc_auc_score(y, p)), "log_loss": float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9)))}


def _global_better(a: dict, b: dict, auc_tie: float = 0.005) -> bool:
    """The fallback: higher global AUC, or lower log-loss when the AUCs are within ``auc_tie``."""
    if a["auc"] is None or b["auc"] is None:
        return a["auc"] is not None
    if abs(a["auc"] - b["auc"]) > auc_tie:
        return a["auc"] > b["auc"]
    return a["log_loss"] < b["log_loss"]


def ranks_within_customers(a: dict, b: dict) -> bool:
    """Can the validation week compare ``a`` and ``b`` within customers (enough customers with both labels)?"""
    from metro_assets.ranking.selection import MIN_RANKING_CUSTOMERS

    return all(m.get("grouped_auc") is not None and m.get("ranking_customers", 0) >= MIN_RANKING_CUSTOMERS
               and len(m.get("customer_auc", ())) == m["ranking_customers"] for m in (a, b))


def better(a: dict, b: dict, auc_tie: float = 0.005, tie_z: float | None = None) -> bool:
    """Is model ``a`` better than the incumbent ``b`` at what serving does: ranking each customer's offers.

    When the validation week holds enough customers with a redeemed and a
    non-redeemed shown offer (:func:`ranks_within_customers`), ``a`` is better
    when its per-customer grouped AUC beats ``b``'s by more than ``tie_z``
    standard errors of the paired difference (:data:`.selection.TIE_Z`);
    within the tie the incumbent stays. Otherwise (metrics without
    ``grouped_auc``, or too few such customers) the global rule decides:
    higher AUC, or lower log-loss when the AUCs are within ``auc_tie``.
    """
    from metro_assets.ranking.selection import TIE_Z, paired_z

    if ranks_within_customers(a, b):
        return paired_z(np.asarray(a["customer_auc"]), np.asarray(b["customer_auc"])) > (
            TIE_Z if tie_z is None else tie_z)
    return _global_better(a, b, auc_tie)
