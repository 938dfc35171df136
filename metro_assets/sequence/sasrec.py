"""SASRec in PyTorch: causal self-attention over a customer's product sequence, trained to predict the next one.

Imported only when :func:`metro_assets.deep.deep_status` says PyTorch runs (the
core install never imports this module). The model (Kang & McAuley, 2018):
item embeddings (shared by input and output) plus learned positional
embeddings, ``layers`` pre-norm transformer blocks with a causal mask (a
position sees itself and the past only, never padding), and a score for item
i at each position = hidden state . embedding(i) plus a learned repeat term
(w1 log(1 + times i was bought before, whole history) + w2 / (1 + steps since
the last time in the window)): grocery is mostly re-buying, and without it the model spent its
capacity re-learning each customer's staples (measured at the default scale:
Hit@10 0.02 after 4 epochs, below popularity, with buy-again at 0.26). Trained with a sampled
softmax: each position's next item against ``negatives`` items drawn per batch
by popularity, with the log-Q correction (logit - log q); an accidental draw of
the true item is masked. Measured at the default scale: uniform negatives
pushed the loss down while the full ranking's Hit@10 fell after the first
epoch (popular items the few uniform draws rarely hit crept into the top 10).

Deterministic with a seed on the CPU: the batch order, the negatives and
dropout all come from generators seeded by it (:func:`metro_assets.deep.seed_torch`).
Stored without pickle: safetensors weights, the vocabulary as ``.npy`` bytes,
the configuration as JSON.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
import torch
from torch import nn

from metro_assets.deep import array_from_bytes, array_to_bytes, seed_torch, weights_from_bytes, weights_to_bytes
from metro_assets.sequence.history import newest_windows
from metro_assets.sequence.metrics import ranking_metrics


#: Training threads. Measured on the shared 2-core box: one thread 0.17 s per batch of 256 sequences,
#: two threads 0.6-1.9 s (they spin-wait on each other when the other core is busy).
THREADS = 1


@dataclass(frozen=True)
class SasrecConfig:
    """The model's shape and training knobs (``METRO_SEQUENCE_*`` set some; the rest are measured defaults)."""

    max_len: int = 50         # METRO_SEQUENCE_LENGTH: items of history the model reads
    dim: int = 48
    heads: int = 1
    layers: int = 1
    dropout: float = 0.2
    epochs: int = 3           # METRO_SEQUENCE_EPOCHS: at most; the best epoch on validation is kept
    windows: int = 1          # windows of max_len + 1 items per customer per epoch (newest first)
    batch_size: int = 256
    negatives: int = 256      # uniform negatives shared by a batch
    learning_rate: float = 2e-3
    validation_customers: int = 5_000  # held-out customers validated after each epoch (a fixed sample)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.feed = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):
        y = self.norm1(x)
        x = x + self.drop(self.attention(y, y, y, attn_mask=mask, need_weights=False)[0])
        return x + self.drop(self.feed(self.norm2(x)))


class Sasrec(nn.Module):
    """Items 1..n_items (0 pads); ``forward`` maps (batch, max_len) items to (batch, max_len, dim) states."""

    def __init__(self, n_items: int, config: SasrecConfig):
        super().__init__()
        self.config = config
        self.item = nn.Embedding(n_items + 1, config.dim, padding_idx=0)
        self.position = nn.Embedding(config.max_len, config.dim)
        self.blocks = nn.ModuleList(_Block(config.dim, config.heads, config.dropout) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)
        self.drop = nn.Dropout(config.dropout)
        # the repeat term's weights: log(1 + times in the history) and recency of the item's last occurrence
        self.repeat = nn.Parameter(torch.tensor([3.0, 0.0]))
        nn.init.normal_(self.item.weight, std=0.05)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        batch, length = items.shape
        positions = torch.arange(self.config.max_len - length, self.config.max_len, device=items.device)
        x = self.drop(self.item(items) * math.sqrt(self.config.dim) + self.position(positions))
        # True = may not attend: the future, and padding (but a position always sees itself, so no row is empty)
        future = torch.triu(torch.ones(length, length, dtype=torch.bool, device=items.device), 1)
        blocked = future[None] | (items == 0)[:, None, :]
        blocked &= ~torch.eye(length, dtype=torch.bool, device=items.device)[None]
        mask = blocked.repeat_interleave(self.config.heads, dim=0)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def last_state(self, items: torch.Tensor) -> torch.Tensor:
        """The state after the newest item of each row (rows are left-padded)."""
        return self.forward(items)[:, -1, :]

    def repeat_term(self, counts: torch.Tensor, since: torch.Tensor) -> torch.Tensor:
        """The score an item gets from its own history: ``counts`` times seen, ``since`` steps since the last
        time (ignored where ``counts`` is 0)."""
        recency = torch.where(counts > 0, 1.0 / (1.0 + since.float()), torch.zeros_like(since, dtype=torch.float))
        return self.repeat[0] * torch.log1p(counts.float()) + self.repeat[1] * recency

    def logits(self, items: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Scores of every item after each left-padded row of ``items``; the padding item scores -inf.

        ``prior`` (batch, n_items + 1) counts each item in the history before the window.
        """
        states = self.last_state(items)
        batch, length = items.shape
        counts = prior.clone()
        counts.scatter_add_(1, items, torch.ones_like(items, dtype=counts.dtype))
        where = torch.arange(length, device=items.device).expand(batch, length).contiguous()
        last = torch.full_like(items[:, :1].expand(batch, counts.shape[1]), -1).contiguous()
        last = last.scatter_reduce_(1, items, where, reduce="amax", include_self=True)
        out = states @ self.item.weight.T + self.repeat_term(counts, length - 1 - last)
        out[:, 0] = float("-inf")
        return out

    def training_logits(self, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
                        prior: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        """Sampled-softmax logits at each position with a target: [true next item, ``negatives``...].

        ``prior`` (batch, n_items + 1) counts each item in the history before the window; ``log_q`` is
        the log-probability of drawing each item as a negative (subtracted: the log-Q correction).
        """
        states = self.forward(inputs)
        length = inputs.shape[1]
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=inputs.device))
        where = torch.arange(length, device=inputs.device)
        # the true item: its count and last position in the prefix up to each position
        same = (inputs[:, None, :] == targets[:, :, None]) & causal[None]             # (batch, t, j)
        pos_counts = same.sum(-1) + prior.gather(1, targets)
        pos_last = torch.where(same, where, -1).amax(-1)
        # the negatives: prefix counts and last positions along the sequence
        hits = inputs[:, :, None] == negatives[None, None, :]                           # (batch, t, s)
        neg_counts = hits.float().cumsum(1) + prior[:, negatives][:, None, :]
        neg_last = torch.where(hits, where[None, :, None], -1).cummax(1).values
        t = where[None, :]
        pos = (states * self.item(targets)).sum(-1) + self.repeat_term(pos_counts, t - pos_last) - log_q[targets]
        neg = (states @ self.item(negatives).T + self.repeat_term(neg_counts, t[..., None] - neg_last)
               - log_q[negatives])
        keep = targets > 0
        neg = neg[keep].masked_fill(negatives[None, :] == targets[keep][:, None], float("-inf"))
        return torch.cat([pos[keep][:, None], neg], dim=1)


@dataclass
class TrainedSequenceModel:
    """A trained SASRec with what it needs to run again and how it was validated."""

    model: Sasrec
    vocab: np.ndarray                  # product ids of items 1..V
    config: SasrecConfig
    epochs: list[dict] = field(default_factory=list)  # per epoch: loss, seconds, validation hit/ndcg
    best_epoch: int = 0

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([e["seconds"] for e in self.epochs])) if self.epochs else 0.0


def _validation_sample(history: pl.DataFrame, held_out: pl.DataFrame, n: int, seed: int):
    customers = held_out["customer_id"].unique().sort()
    if customers.len() > n:
        customers = customers.sample(n, seed=seed).sort()
    return customers, held_out.filter(pl.col("customer_id").is_in(customers.implode()))


def _dense(prior, lo: int, hi: int, device: str) -> torch.Tensor:
    return torch.from_numpy(prior[lo:hi].toarray()).to(device)


def top_items(model: Sasrec, sequences: np.ndarray, prior, k: int, device: str = "cpu",
              batch: int = 1024) -> np.ndarray:
    """The ``k`` best items (1..V) after each left-padded sequence (``prior``: counts before it), best first."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(sequences), batch):  # batches of customers, not rows
            seq = torch.from_numpy(np.array(sequences[i:i + batch])).to(device)
            logits = model.logits(seq, _dense(prior, i, i + batch, device))
            out.append(torch.topk(logits, k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def lists_frame(customers: np.ndarray, items: np.ndarray) -> pl.DataFrame:
    """(customer_id, item, rank) rows of per-customer top lists."""
    k = items.shape[1]
    return pl.DataFrame({"customer_id": np.repeat(customers, k), "item": items.reshape(-1).astype(np.int64),
                         "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(customers))})


def evaluate(model: Sasrec, history: pl.DataFrame, held_out: pl.DataFrame, k: int = 10, device: str = "cpu") -> dict:
    """Hit@k / NDCG@k of the model on ``held_out`` (customer_id, item) from ``history`` (see metrics)."""
    mine = history.filter(pl.col("customer_id").is_in(held_out["customer_id"].unique().implode()))
    customers, sequences, prior = newest_windows(mine, model.config.max_len, model.item.num_embeddings - 1)
    top = top_items(model, sequences, prior, k, device)
    return ranking_metrics(lists_frame(customers, top), held_out, k)


def train(history: pl.DataFrame, held_out: pl.DataFrame, vocab: np.ndarray, config: SasrecConfig, seed: int,
          device: str = "cpu", log=None) -> TrainedSequenceModel:
    """Train on ``history`` (encoded events, sequence order), validate on ``held_out`` after each epoch.

    Parameters
    ----------
    history : polars.DataFrame
        ``customer_id``, ``day``, ``item`` (1..V): every event before each customer's held-out basket.
    held_out : polars.DataFrame
        ``customer_id``, ``item``: the held-out last baskets (leave-last-basket-out).
    vocab : numpy.ndarray
        Product ids of items 1..V.
    config : SasrecConfig
    seed : int
        Same seed, same data: same weights (CPU).
    device : str
        ``cpu`` or ``cuda`` (see :func:`metro_assets.deep.deep_status`).
    log : callable, optional
        Called with one line per epoch.

    Returns
    -------
    TrainedSequenceModel
        With the weights of the epoch that validated best (NDCG@10), or of the last
        epoch when nothing is held out.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _train(history, held_out, vocab, config, seed, device, log)
    finally:
        torch.set_num_threads(threads)


def _train(history, held_out, vocab, config, seed, device, log) -> TrainedSequenceModel:
    seed_torch(seed)
    generator = torch.Generator().manual_seed(seed)
    _, matrix, prior, day_ends = newest_windows(history, config.max_len + 1, len(vocab), config.windows,
                                                day_ends=True)
    windows = torch.from_numpy(matrix)
    # train only where the next item opens a new basket: what the model is asked at serving time (measured:
    # trained on every position it learnt within-basket order, and next-basket Hit@10 fell after 2 epochs)
    opens = torch.from_numpy(day_ends[:, :-1])
    # negatives drawn by popularity: the popular items are the ones a full ranking must learn to push down
    counts = np.bincount(history["item"].to_numpy(), minlength=len(vocab) + 1).astype(np.float64)
    counts[0] = 0.0
    q = torch.from_numpy((counts + 1.0) / (counts + 1.0)[1:].sum())
    q[0] = 0.0
    log_q = torch.log(q.clamp_min(1e-12)).float().to(device)
    model = Sasrec(len(vocab), config).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    val_customers, val_targets = _validation_sample(history, held_out, config.validation_customers, seed)
    val_history = history.filter(pl.col("customer_id").is_in(val_customers.implode()))
    trained = TrainedSequenceModel(model, vocab, config)
    best, best_state = -1.0, None
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(windows), generator=generator)
        total, count = 0.0, 0
        for i in range(0, len(order), config.batch_size):  # a loop over batches, the unit of SGD
            rows = order[i:i + config.batch_size]
            w = windows[rows].to(device)
            batch_prior = torch.from_numpy(prior[rows.numpy()].toarray()).to(device)
            inputs, targets = w[:, :-1], w[:, 1:] * opens[rows].to(device)
            negatives = torch.multinomial(q, config.negatives, replacement=True, generator=generator).to(device)
            logits = model.training_logits(inputs, targets, negatives, batch_prior, log_q)
            loss = nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + float(loss.detach()) * len(logits), count + len(logits)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, "loss": round(total / max(count, 1), 4), "seconds": round(seconds, 1),
                  "windows": len(windows)}
        if val_targets.height:
            metrics = evaluate(model, val_history, val_targets, 10, device)
            record.update(validation_hit_at_10=metrics["hit_at_k"], validation_ndcg_at_10=metrics["ndcg_at_k"])
            if metrics["ndcg_at_k"] > best:
                best, best_state, trained.best_epoch = metrics["ndcg_at_k"], copy.deepcopy(model.state_dict()), epoch
        trained.epochs.append(record)
        if log:
            log(f"SASRec epoch {epoch}: {record}")
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        trained.best_epoch = config.epochs
    model.eval()
    return trained


def to_blobs(trained: TrainedSequenceModel) -> dict:
    """The model as storable values: safetensors weights, ``.npy`` vocabulary, JSON config (no pickle)."""
    return {"weights": weights_to_bytes(trained.model.state_dict()), "vocab": array_to_bytes(trained.vocab),
            "config": json.dumps(asdict(trained.config))}


def from_blobs(weights: bytes, vocab: bytes, config: str, device: str = "cpu") -> TrainedSequenceModel:
    """Rebuild a stored model (see :func:`to_blobs`), ready to score."""
    cfg = SasrecConfig(**json.loads(config))
    codes = array_from_bytes(vocab)
    model = Sasrec(len(codes), cfg)
    model.load_state_dict(weights_from_bytes(weights))
    model.to(device).eval()
    return TrainedSequenceModel(model, codes, cfg)


def log_probabilities(model: Sasrec, sequences: np.ndarray, prior, rows: np.ndarray, items: np.ndarray,
                      device: str = "cpu", batch: int = 1024) -> np.ndarray:
    """log P(next item = ``items[j]`` | ``sequences[rows[j]]``, ``prior[rows[j]]``) over every item, per request j.

    ``rows`` must be sorted; requests are answered batch by batch of sequences.
    """
    out = np.empty(len(rows), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(sequences), batch):  # batches of sequences, not rows
            lo, hi = np.searchsorted(rows, [i, i + batch])
            if lo == hi:
                continue
            seq = torch.from_numpy(np.array(sequences[i:i + batch])).to(device)
            logp = torch.log_softmax(model.logits(seq, _dense(prior, i, i + batch, device)), dim=1)
            r = torch.from_numpy(np.array(rows[lo:hi] - i)).to(device)
            c = torch.from_numpy(np.array(items[lo:hi])).to(device)
            out[lo:hi] = logp[r, c].double().cpu().numpy()
    return out
