"""Cumulative-regret plots of a bandit run (PNG, matplotlib without a display)."""

from __future__ import annotations

import io

import polars as pl

COLOURS = {"thompson": "#d62728", "epsilon_greedy": "#ff7f0e", "batch": "#1f77b4", "random": "#7f7f7f",
           "oracle": "#2ca02c"}


def regret_png(frame: pl.DataFrame, title: str) -> bytes:
    """Cumulative regret (expected redemptions short of the oracle's) per policy and day, as PNG bytes.

    The oracle's line is zero by definition; it is drawn for reference.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=90)
    for policy in sorted(frame["policy"].unique().to_list(), key=lambda p: list(COLOURS).index(p)
                         if p in COLOURS else 99):
        x = frame.filter(pl.col("policy") == policy).sort("day")
        ax.plot(x["day"].to_list(), x["cumulative_regret"].to_list(), label=policy, color=COLOURS.get(policy))
        ax2.plot(x["day"].to_list(), x["regret"].rolling_mean(7, min_samples=1).to_list(), label=policy,
                 color=COLOURS.get(policy))
    ax.set_title("cumulative regret (expected redemptions)")
    ax2.set_title("daily regret, 7-day mean")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        a.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
