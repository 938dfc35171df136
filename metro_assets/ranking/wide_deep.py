"""Wide & Deep (Cheng et al., 2016) in PyTorch: the third ranker kind, ``wide_deep``.

One logit, the sum of two parts trained together:

* **wide**: a linear model over the standardised dense features (with a
  missing flag each) plus one learned weight per value of each *crossed*
  feature (:data:`CROSSES`: category x segment, discount depth x promo
  affinity, brand x brand loyalty, category x purchase cycle, ...). It
  memorises which combinations redeem, and each of its terms is a readable
  contribution (:meth:`LoadedWideDeep.explain`).
* **deep**: embeddings of the customer, product, category, brand, segment and
  discount type, concatenated with the dense features, through a small MLP.
  It generalises to combinations the wide part has not seen.

It learns from the same :class:`~metro_assets.ranking.training.TrainingSet`
as the other kinds (temporal split, negatives sampled; scores corrected with
``odds_true = rate * odds_sampled``) and stops early on the validation week.
Category and brand come from the product through the training day's
catalogue (``TrainingSet.catalogue``), stored inside the model: scoring needs
only the customer and product ids beside the features
(:data:`ID_FEATURES`). Ids the model has not seen share one "unknown" row of
each embedding (trained by dropping 30% of the ids to it).

Stored as text, never pickled: JSON with the configuration and the weights
and lookups as base64 safetensors (:func:`metro_assets.deep.weights_to_bytes`).
PyTorch is imported only inside the functions: the module imports without it.

Examples
--------
>>> WIDE_DEEP_KIND
'wide_deep'
>>> [name for name, _ in CROSSES][:2]
['category x segment', 'discount depth x promo affinity']
"""

from __future__ import annotations

import base64
import json
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl

from metro_assets.deep import weights_from_bytes, weights_to_bytes

WIDE_DEEP_KIND = "wide_deep"
FORMAT = "wide_deep/1"
#: The id columns the model reads after the dense features (``as_matrix`` order).
ID_FEATURES = ["customer_id", "product_id"]
SEGMENTS = ("budget", "premium", "family", "horeca")        # the segment_* one-hot columns
DISCOUNT_TYPES = ("percentage", "fixed_amount", "bogo")     # the discount_* one-hot columns
#: Dense features cut into quantile buckets for the crosses (missing values get a bucket of their own).
BUCKETED = ("discount_depth", "promo_affinity_all", "brand_line_share",
            "days_since_regular_purchase_in_category", "category_line_share")
BUCKETS = 8
#: The wide part's crossed features: each is a product of categorical parts; "x:b" is feature x's bucket.
CROSSES = [
    ("category x segment", ("category", "segment")),
    ("discount depth x promo affinity", ("discount_depth:b", "promo_affinity_all:b")),
    ("brand x brand loyalty", ("brand", "brand_line_share:b")),
    ("category x purchase cycle", ("category", "days_since_regular_purchase_in_category:b")),
    ("category x discount depth", ("category", "discount_depth:b")),
    ("category share x discount depth", ("category_line_share:b", "discount_depth:b")),
    ("discount type x segment", ("discount_type", "segment")),
]
EMBEDDING_DIMS = {"customer": 8, "product": 16, "category": 8, "brand": 8, "segment": 3, "discount_type": 2}
HIDDEN = (128, 64)


@dataclass(frozen=True)
class WideDeepParams:
    """Training knobs (fixed: tuned on the tuning seeds only, see docs/EVALUATION.md)."""

    epochs: int = 12            # at most; early stopping usually ends sooner
    patience: int = 2           # epochs without a better validation log-loss before stopping
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    dropout: float = 0.1
    id_dropout: float = 0.3     # share of training ids replaced by "unknown", so unseen ids score sensibly
    max_seconds: float = 240.0  # a hard stop under the 5-minute target at default scale
    seed: int = 7
    threads: int = 1            # small batches: a second thread mostly spin-waits on a busy 2-core box


#: Rows scored per forward pass: bounds the temporaries (measured: 64k rows of float32 stay in cache).
ROWS_PER_CHUNK = 65_536
#: PyTorch threads while scoring. Measured on the default pool (512k pairs, 2 cores, load 15): 1 thread
#: 192k pairs/s (643k per CPU-second), 2 threads 87k pairs/s: the second thread spin-waits on a busy box.
SCORING_THREADS = 1


def _torch():
    import torch

    return torch


@contextmanager
def _threads(n: int):
    """PyTorch's intra-op threads set to ``n`` inside, restored after (the process's other users keep theirs)."""
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------
# Inputs: the float matrix (dense features then ids) -> standardised dense, bucket and id codes
# ---------------------------------------------------------------------------------------------------------

def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """1 + position of each id in ``sorted_ids``; 0 when absent (unknown) or missing."""
    if sorted_ids.size == 0:
        return np.zeros(len(ids), dtype=np.int64)
    finite = np.isfinite(ids)
    keys = np.where(finite, ids, -1).astype(np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, keys), 0, sorted_ids.size - 1)
    return np.where(finite & (sorted_ids[pos] == keys), pos + 1, 0).astype(np.int64)


def _one_hot_code(X: np.ndarray, columns: list[int]) -> np.ndarray:
    """1 + the index of the set one-hot column; 0 when none is set (unknown or missing)."""
    block = np.nan_to_num(X[:, columns], nan=0.0)
    return np.where(block.max(axis=1) > 0.5, block.argmax(axis=1) + 1, 0).astype(np.int64)


def _bucket(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """0 for missing, else 1 + the quantile bucket."""
    return np.where(np.isfinite(values), np.searchsorted(edges, np.nan_to_num(values), side="right") + 1,
                    0).astype(np.int64)


class Encoder:
    """Turns the model's float matrix into the network's inputs; everything it needs is stored."""

    def __init__(self, config: dict, lookups: dict[str, np.ndarray]):
        self.config = config
        self.features = config["features"]          # dense features, then ID_FEATURES
        self.dense = config["dense"]
        self.medians = np.asarray(config["medians"], dtype=np.float64)
        self.mean = np.asarray(config["mean"], dtype=np.float64)
        self.scale = np.asarray(config["scale"], dtype=np.float64)
        self.edges = {k: np.asarray(v, dtype=np.float64) for k, v in config["edges"].items()}
        self.lookups = lookups
        col = {f: i for i, f in enumerate(self.features)}
        self.col = col
        self.segment_cols = [col[f"segment_{s}"] for s in SEGMENTS]
        self.discount_cols = [col[f"discount_{t}"] for t in DISCOUNT_TYPES]
        self.cardinality = {
            "customer": len(lookups["customer_ids"]) + 1,
            "product": len(lookups["product_ids"]) + 1,
            "category": len(config["categories"]) + 1,
            "brand": len(config["brands"]) + 1,
            "segment": len(SEGMENTS) + 1,
            "discount_type": len(DISCOUNT_TYPES) + 1,
        }
        for name in BUCKETED:
            self.cardinality[f"{name}:b"] = len(self.edges[name]) + 2  # missing, then len(edges) + 1 buckets
        sizes = [int(np.prod([self.cardinality[p] for p in parts])) for _, parts in CROSSES]
        self.cross_sizes = sizes
        self.cross_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    @classmethod
    def fit(cls, X: np.ndarray, features: list[str], customer_ids: np.ndarray, catalogue: pl.DataFrame | None):
        """Medians, standardisation, bucket edges and vocabularies from the training rows."""
        dense = [f for f in features if f not in ID_FEATURES]
        D = X[:, : len(dense)]
        with warnings.catch_warnings():  # an all-missing column has no median
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(np.where(np.isfinite(D), D, np.nan), axis=0)
            edges = {}
            for name in BUCKETED:
                v = D[:, dense.index(name)]
                v = v[np.isfinite(v)]
                q = np.quantile(v, np.linspace(0, 1, BUCKETS + 1)[1:-1]) if v.size else np.zeros(0)
                edges[name] = np.unique(q).tolist()
        medians = np.where(np.isfinite(medians), medians, 0.0)
        Z = _design(D, medians)
        mean, scale = Z.mean(axis=0), Z.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        if catalogue is None or catalogue.height == 0:
            catalogue = pl.DataFrame({"product_id": [], "category": [], "brand": []},
                                     schema={"product_id": pl.Int64, "category": pl.Utf8, "brand": pl.Utf8})
        catalogue = catalogue.sort("product_id")
        categories = sorted(c for c in catalogue["category"].unique().to_list() if c is not None)
        brands = sorted(b for b in catalogue["brand"].unique().to_list() if b is not None)
        code = lambda values, vocab: (  # noqa: E731 - 1 + position, 0 for unknown/None
            pl.Series(values).replace_strict(vocab, list(range(1, len(vocab) + 1)), default=0,
                                             return_dtype=pl.Int64).to_numpy())
        lookups = {
            "customer_ids": np.unique(customer_ids.astype(np.int64)),
            "product_ids": catalogue["product_id"].to_numpy().astype(np.int64),
            "product_category": code(catalogue["category"], categories),
            "product_brand": code(catalogue["brand"], brands),
        }
        config = {"features": list(features), "dense": dense, "medians": medians.tolist(), "mean": mean.tolist(),
                  "scale": scale.tolist(), "edges": edges, "categories": categories, "brands": brands}
        return cls(config, lookups)

    def encode(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """``z`` (standardised dense + missing flags, float32), ``ids`` (n x 6) and ``cross`` (n x crosses)."""
        n_dense = len(self.dense)
        D = X[:, :n_dense]
        z = np.clip((_design(D, self.medians) - self.mean) / self.scale, -5.0, 5.0).astype(np.float32)
        product = _lookup(self.lookups["product_ids"], X[:, self.col["product_id"]])
        category = np.concatenate([[0], self.lookups["product_category"]])[product]
        brand = np.concatenate([[0], self.lookups["product_brand"]])[product]
        parts = {
            "customer": _lookup(self.lookups["customer_ids"], X[:, self.col["customer_id"]]),
            "product": product,
            "category": category,
            "brand": brand,
            "segment": _one_hot_code(X, self.segment_cols),
            "discount_type": _one_hot_code(X, self.discount_cols),
        }
        for name in BUCKETED:
            parts[f"{name}:b"] = _bucket(D[:, self.dense.index(name)], self.edges[name])
        cross = np.empty((len(X), len(CROSSES)), dtype=np.int64)
        for j, (_, names) in enumerate(CROSSES):  # a loop over the 7 crosses, vectorised over rows
            index = np.zeros(len(X), dtype=np.int64)
            for p in names:
                index = index * self.cardinality[p] + parts[p]
            cross[:, j] = self.cross_offsets[j] + index
        ids = np.stack([parts[k] for k in EMBEDDING_DIMS], axis=1)
        return {"z": z, "ids": ids, "cross": cross}


def _design(D: np.ndarray, medians: np.ndarray) -> np.ndarray:
    missing = ~np.isfinite(D)
    return np.hstack([np.where(missing, medians, D), missing.astype(np.float64)])


# ---------------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------------

def _network(encoder: Encoder, dropout: float):
    torch = _torch()
    nn = torch.nn

    class WideDeep(nn.Module):
        def __init__(self):
            super().__init__()
            n_z = 2 * len(encoder.dense)
            self.embeddings = nn.ModuleList(
                [nn.Embedding(encoder.cardinality[k], d) for k, d in EMBEDDING_DIMS.items()])
            self.wide_linear = nn.Linear(n_z, 1)
            self.wide_cross = nn.Embedding(int(sum(encoder.cross_sizes)), 1)
            nn.init.zeros_(self.wide_cross.weight)
            layers, width = [], n_z + sum(EMBEDDING_DIMS.values())
            for h in HIDDEN:
                layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
                width = h
            layers.append(nn.Linear(width, 1))
            self.deep = nn.Sequential(*layers)

        def parts(self, z, ids, cross):
            """(wide linear terms n x n_z, cross weights n x crosses, deep logit n) : their sum + bias is the logit."""
            linear = z * self.wide_linear.weight[0]
            crossed = self.wide_cross(cross).squeeze(-1)
            embedded = [emb(ids[:, i]) for i, emb in enumerate(self.embeddings)]
            deep = self.deep(torch.cat([z, *embedded], dim=1)).squeeze(-1)
            return linear, crossed, deep

        def forward(self, z, ids, cross):
            linear, crossed, deep = self.parts(z, ids, cross)
            return linear.sum(1) + crossed.sum(1) + deep + self.wide_linear.bias[0]

    return WideDeep()


def _tensors(batch: dict[str, np.ndarray], device: str):
    torch = _torch()
    return (torch.from_numpy(batch["z"]).to(device), torch.from_numpy(batch["ids"]).to(device),
            torch.from_numpy(batch["cross"]).to(device))


def _sampled_logits(net, encoder: Encoder, X: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The network's logits (before the sampling correction), in chunks."""
    torch = _torch()
    out = np.empty(len(X), dtype=np.float64)
    net.eval()
    with torch.inference_mode(), _threads(SCORING_THREADS):
        for i in range(0, len(X), ROWS_PER_CHUNK):  # a loop over chunks: temporaries stay small
            out[i:i + ROWS_PER_CHUNK] = net(*_tensors(encoder.encode(X[i:i + ROWS_PER_CHUNK]), device)).cpu().numpy()
    return out


def _corrected(logit: np.ndarray, sampling_rate: float) -> np.ndarray:
    """P(redemption) with the sampled-away negatives put back: logit_true = logit + ln(rate)."""
    return 1.0 / (1.0 + np.exp(-(logit + math.log(sampling_rate))))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ---------------------------------------------------------------------------------------------------------
# Training, storing, loading
# ---------------------------------------------------------------------------------------------------------

@dataclass
class FitReport:
    """How a fit went: epochs run, the best epoch, why it stopped, seconds."""

    epochs: int
    best_epoch: int
    stopped: str
    seconds: float


@dataclass
class WideDeepFit:
    """A fitted Wide & Deep: its stored text, the importances (mean |contribution| shares), how the fit went."""

    blob: str
    importances: dict[str, float]
    report: FitReport


def train_wide_deep(X: np.ndarray, y: np.ndarray, features: list[str], sampling_rate: float,
                    catalogue: pl.DataFrame | None, Xv: np.ndarray | None = None, yv: np.ndarray | None = None,
                    device: str = "cpu", params: WideDeepParams = WideDeepParams()):
    """Fit Wide & Deep; early stopping on the validation rows' log-loss (corrected probabilities).

    Parameters
    ----------
    X, y : numpy.ndarray
        Training rows (``features`` order: the dense features, then :data:`ID_FEATURES`) and labels.
    features : list of str
        The matrix's columns.
    sampling_rate : float
        Share of negatives kept in training (scores are corrected for it).
    catalogue : polars.DataFrame or None
        ``product_id``, ``category``, ``brand`` of the known products.
    Xv, yv : numpy.ndarray, optional
        The validation week (unsampled); without it (or with one class only) training runs all epochs.
    device : str
        ``cpu`` or ``cuda`` (see :func:`metro_assets.deep.deep_status`).

    Returns
    -------
    WideDeepFit
        The stored text, the importances and a :class:`FitReport` (training.py makes the StoredModel).
    """
    with _threads(params.threads):
        return _fit(X, y, features, catalogue, sampling_rate, Xv, yv, device, params)


def _fit(X, y, features, catalogue, sampling_rate, Xv, yv, device, params) -> "WideDeepFit":
    torch = _torch()
    started = time.perf_counter()
    # the seed alone: every op used here is deterministic on the CPU (a test fits twice and compares bits);
    # deep.seed_torch's use_deterministic_algorithms imports torch._inductor, 2.6 s per process measured
    torch.manual_seed(params.seed)
    encoder = Encoder.fit(X, features, X[:, features.index("customer_id")], catalogue)
    net = _network(encoder, params.dropout).to(device)
    optimiser = torch.optim.AdamW(net.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    data = encoder.encode(X)
    z, ids, cross = _tensors(data, device)
    target = torch.from_numpy(y.astype(np.float32)).to(device)
    validate = Xv is not None and yv is not None and len(np.unique(yv)) == 2
    generator = torch.Generator().manual_seed(params.seed)
    best, best_state, best_epoch, stale, stopped, epoch = math.inf, None, 0, 0, "all epochs", 0
    for epoch in range(1, params.epochs + 1):
        net.train()
        order = torch.randperm(len(y), generator=generator)
        # unknown-id dropout: the "unknown" row learns the average customer and product
        drop = (torch.rand(ids.shape[0], 2, generator=generator) < params.id_dropout).to(device)
        epoch_ids = ids.clone()
        epoch_ids[:, :2] = torch.where(drop, torch.zeros_like(epoch_ids[:, :2]), epoch_ids[:, :2])
        for i in range(0, len(y), params.batch_size):  # a loop over mini-batches
            b = order[i:i + params.batch_size].to(device)
            optimiser.zero_grad()
            loss = loss_fn(net(z[b], epoch_ids[b], cross[b]), target[b])
            loss.backward()
            optimiser.step()
        if validate:
            loss_v = _log_loss(yv, _corrected(_sampled_logits(net, encoder, Xv, device), sampling_rate))
            if loss_v < best - 1e-6:
                best, best_epoch, stale = loss_v, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= params.patience:
                    stopped = f"early stop: no better validation log-loss for {params.patience} epochs"
                    break
        if time.perf_counter() - started > params.max_seconds:
            stopped = f"time limit {params.max_seconds:.0f} s"
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = epoch
    stored_text = _to_text(encoder, net, params)
    loaded = LoadedWideDeep.from_text(stored_text)
    importances = loaded.importances(Xv if validate else X)
    report = FitReport(epoch, best_epoch, stopped, time.perf_counter() - started)
    return WideDeepFit(stored_text, importances, report)


def _to_text(encoder: Encoder, net, params: WideDeepParams) -> str:
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch = _torch()
    tensors.update({f"lookup.{k}": torch.from_numpy(np.array(v, dtype=np.int64)) for k, v in encoder.lookups.items()})
    return json.dumps({"format": FORMAT, "config": {**encoder.config, "dropout": params.dropout},
                       "weights": base64.b64encode(weights_to_bytes(tensors)).decode("ascii")})


class LoadedWideDeep:
    """A stored Wide & Deep ready to score (CPU) and to explain its scores."""

    def __init__(self, encoder: Encoder, net):
        self.encoder = encoder
        self.net = net.eval()

    @classmethod
    def from_text(cls, text: str) -> "LoadedWideDeep":
        """Rebuild from the stored text (no pickle: JSON and safetensors)."""
        stored = json.loads(text)
        if stored.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model (format {stored.get('format')!r})")
        tensors = weights_from_bytes(base64.b64decode(stored["weights"]))
        lookups = {k[len("lookup."):]: v.numpy() for k, v in tensors.items() if k.startswith("lookup.")}
        encoder = Encoder(stored["config"], lookups)
        net = _network(encoder, stored["config"]["dropout"])
        net.load_state_dict({k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")})
        return cls(encoder, net)

    def sampled_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits before the sampling correction (add ln(rate) for the true odds)."""
        return _sampled_logits(self.net, self.encoder, X)

    def predict(self, X: np.ndarray, sampling_rate: float) -> np.ndarray:
        """P(redemption within 7 days), corrected for the sampled-away negatives."""
        return _corrected(self.sampled_logits(X), sampling_rate)

    def contribution_names(self) -> list[str]:
        """The names of :meth:`explain`'s columns: one per dense feature, one per cross, then ``deep``."""
        return [*self.encoder.dense, *(name for name, _ in CROSSES), "deep"]

    def explain(self, X: np.ndarray, sampling_rate: float = 1.0) -> tuple[np.ndarray, float]:
        """Each row's logit as additive contributions: ``(contributions n x m, bias)``.

        Columns follow :meth:`contribution_names`: a dense feature's wide
        weight x its standardised value (plus its missing flag's term), each
        cross's learned weight for the row's combination, and the deep part's
        whole output in one ``deep`` column (it is not additive per feature).
        ``contributions.sum(1) + bias`` is the corrected logit, i.e.
        ``logit(predict(X, sampling_rate))``, to float32 precision.
        """
        torch = _torch()
        n_dense = len(self.encoder.dense)
        out = np.empty((len(X), n_dense + len(CROSSES) + 1), dtype=np.float64)
        with torch.inference_mode(), _threads(SCORING_THREADS):
            for i in range(0, len(X), ROWS_PER_CHUNK):  # a loop over chunks
                linear, crossed, deep = self.net.parts(*_tensors(self.encoder.encode(X[i:i + ROWS_PER_CHUNK]), "cpu"))
                linear = linear.double().numpy()
                rows = slice(i, i + len(linear))
                out[rows, :n_dense] = linear[:, :n_dense] + linear[:, n_dense:]  # value + its missing flag
                out[rows, n_dense:n_dense + len(CROSSES)] = crossed.double().numpy()
                out[rows, -1] = deep.double().numpy()
        bias = float(self.net.wide_linear.bias.detach()[0]) + math.log(sampling_rate)
        return out, bias

    def importances(self, X: np.ndarray, rows: int = 20_000) -> dict[str, float]:
        """Mean |contribution| share of each wide term and of the deep part, on up to ``rows`` rows."""
        contributions, _ = self.explain(X[:rows])
        weight = np.abs(contributions).mean(axis=0) if len(contributions) else np.zeros(contributions.shape[1])
        total = weight.sum() or 1.0
        return {n: float(w / total) for n, w in zip(self.contribution_names(), weight)}


def load(text: str) -> LoadedWideDeep:
    """A stored ``wide_deep`` model, ready to score."""
    return LoadedWideDeep.from_text(text)


def explain(blob: str, X: np.ndarray, sampling_rate: float) -> tuple[list[str], np.ndarray, float]:
    """Contributions behind a stored model's scores, for reasons: ``(names, contributions, bias)``.

    ``X`` holds the rows to explain in the model's ``features`` order (e.g. a
    customer's top 10). Names are the dense features (the same names as the
    logistic regression's coefficients), the crosses of :data:`CROSSES` and
    ``deep`` (the deep part as one term: not attributable to one feature).
    ``contributions.sum(1) + bias`` is the logit of the served score.

    Examples
    --------
    >>> # names, contributions, bias = explain(stored.blob, as_matrix(top10, stored.features), stored.sampling_rate)
    """
    loaded = load(blob)
    contributions, bias = loaded.explain(X, sampling_rate)
    return loaded.contribution_names(), contributions, bias
