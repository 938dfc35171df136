"""Synthetic serving snapshots for the API tests and the load benchmark.

Realistic in shape (a catalogue of offers, top-N distinct offers per customer
with descending scores, several candidate strategies, awkward product names)
and built vectorised with NumPy/Polars, so 50,000 customers x 10 offers x
7 run dates takes a few seconds.

Customer ids are odd numbers (1, 3, 5, ...): every even id is a well-formed
id the snapshot does not know, handy for 404 tests.

Examples
--------
>>> frame = synthetic_snapshot(customers=3, offers_per_customer=2, run_dates=2)
>>> frame.height, frame["customer_id"].unique().to_list()
(12, [1, 3, 5])
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from metro_assets.serving import SNAPSHOT_COLUMNS

FIRST_RUN_DATE = date(2026, 2, 10)
STRATEGIES = ["repeat_purchase", "category_affinity", "popular_in_segment", "new_to_customer", "exploration"]
DISCOUNT_TYPES = ["percentage", "fixed_amount", "bogo"]
# Names with quotes, backslashes and non-ASCII text: the API builds JSON by hand and must escape them.
NAMES = ["Bio Vollmilch 3,5% 1L", 'Crème fraîche "Extra" 200g', "Brot\\Korn 500g", "Äpfel Elstar 1kg",
         "Olive oil 750ml"]
# Reason phrases as ranking/reasons.py writes them, with quotes and non-ASCII text to escape. A real
# default-scale day has ~850-4,250 distinct phrases in ~20-50k distinct lists (of 1-3) for ~490k rows:
# the synthetic day draws from 4,000 phrases and 50,000 lists, so the API's index meets that variety.
CATEGORIES = ["Dairy", "Bakery", 'Snacks "XL"', "Crème & desserts", "Produce", "Beverages", "Frozen", "Pantry"]
REASONS = (
    [f"you buy {c} on most shopping trips" for c in CATEGORIES]
    + [f"you usually buy {c} every {w} weeks; last time {d} days ago"
       for c in CATEGORIES for w in range(2, 7) for d in range(2, 60)]
    + [f"{p}% off" for p in (10, 15, 20, 25, 30)] + ["buy one, get one free", "you often buy on promotion"]
    + [f"you have bought Product #{i} before" for i in range(100, 1_775)]
)
REASON_LISTS = 50_000


def customer_ids(customers: int) -> np.ndarray:
    """The ids of a synthetic snapshot with ``customers`` customers (odd numbers from 1)."""
    return 1 + 2 * np.arange(customers, dtype=np.int64)


def _reasons(rng: np.random.Generator, rows: int) -> pl.Series:
    """Each row's reasons: one of :data:`REASON_LISTS` lists of 1 to 3 distinct phrases of :data:`REASONS`."""
    vocabulary = pl.Series(REASONS)
    n = min(REASON_LISTS, rows)
    picks = [vocabulary.gather(rng.integers(0, len(REASONS), n)) for _ in range(3)]
    lists = pl.DataFrame({"a": picks[0], "b": picks[1], "c": picks[2], "n": rng.integers(1, 4, n)}).select(
        pl.concat_list("a", "b", "c").list.head(pl.col("n")).list.unique(maintain_order=True)).to_series()
    return lists.gather(rng.integers(0, n, rows)).alias("reasons")


def synthetic_snapshot(
    customers: int = 2_000,
    offers_per_customer: int = 10,
    run_dates: int = 2,
    first_run_date: date = FIRST_RUN_DATE,
    catalogue: int = 200,
    model_version: str = "ranker-test-1",
    tag: str | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """A snapshot frame with the columns of :data:`SNAPSHOT_COLUMNS`.

    Parameters
    ----------
    customers, offers_per_customer, run_dates : int
        Shape: ``customers * offers_per_customer * run_dates`` rows.
    first_run_date : date
        Run dates are ``first_run_date + i`` days.
    catalogue : int
        Offers to choose from (each run date draws its own top-N per customer).
    model_version : str
        Written on every row.
    tag : str, optional
        Appended to every product name (``"name [tag]"``): lets a test tell from
        any single row which snapshot it came from.
    seed : int
        NumPy seed.
    """
    if offers_per_customer > catalogue:
        raise ValueError("offers_per_customer cannot exceed the catalogue")
    rng = np.random.default_rng(seed)
    product_ids = rng.choice(np.arange(100, 100 + 20 * catalogue), size=catalogue, replace=False)
    types = np.array(DISCOUNT_TYPES)[rng.integers(0, 3, size=catalogue)]
    suffix = "" if tag is None else f" [{tag}]"
    offers = pl.DataFrame(
        {
            "offer_id": 10_000 + np.arange(catalogue),
            "product_id": product_ids,
            "product_name": np.array(NAMES)[np.arange(catalogue) % len(NAMES)],
            "discount_type": types,
            "discount_value": np.where(
                types == "percentage",
                rng.choice([10.0, 15.0, 20.0, 25.0, 30.0], size=catalogue),
                np.where(types == "fixed_amount", np.round(rng.uniform(0.5, 5.0, size=catalogue), 2), 1.0),
            ),
            "valid_days": 3 + np.arange(catalogue) % 12,
        }
    ).with_columns(product_name=pl.format("{} #{}{}", "product_name", "product_id", pl.lit(suffix)))
    ids = customer_ids(customers)
    k = offers_per_customer
    frames = []
    for d in range(run_dates):  # a handful of run dates, each one vectorised
        run_date = first_run_date + timedelta(days=d)
        # k distinct offers per customer: the k smallest of a random key per (customer, offer).
        picks = np.argpartition(rng.random((customers, catalogue)), k - 1, axis=1)[:, :k].ravel()
        scores = -np.sort(-rng.beta(1.2, 12.0, size=(customers, k)), axis=1)
        rows = pl.DataFrame(
            {
                "customer_id": np.repeat(ids, k),
                "rank": np.tile(np.arange(1, k + 1), customers),
                "score": scores.ravel(),
                "strategy": np.array(STRATEGIES)[rng.integers(0, len(STRATEGIES), customers * k)],
            }
        ).with_columns(_reasons(rng, customers * k))
        frames.append(
            pl.concat([rows, offers[picks]], how="horizontal").with_columns(
                run_date=pl.lit(run_date),
                expiry_date=pl.lit(run_date) + pl.duration(days=pl.col("valid_days")),
                model_version=pl.lit(model_version),
            )
        )
    return pl.concat(frames).select(pl.col(name).cast(dtype) for name, dtype in SNAPSHOT_COLUMNS.items())
