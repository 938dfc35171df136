"""``METRO_POLICY=thompson`` in the daily pipeline: a daily posterior, sampled when the offers are allocated.

* :func:`fit_posterior` (the ``bandit_posterior`` asset of day D): a Bayesian
  logistic regression over the ranker's features (point in time, as the
  ranker trains) of the impressions of the trailing ``weeks`` before D, with
  the redemptions logged before D (D-1's outcomes included). Open 7-day
  windows count as negatives weighted by the share of redemptions that arrive
  that soon (:func:`metro_assets.bandit.learning.delay_cdf`'s estimate from the
  closed ones). Its prior is the newest logistic-regression ranker on or before
  D (its coefficients, its standardisation), so the weekly model is where
  each day's update starts; the Laplace posterior (mean, covariance) is stored
  in ``bandit_posteriors``.
* :func:`thompson_pool_scores` (inside ``recommendations``): each pool pair's
  score is a draw of its redemption probability from that posterior (the
  logit's Gaussian marginal x.mu +- sqrt(x' Sigma x), the draw hashed from
  (seed, day, customer, offer): reproducible and independent of row order),
  then the one selection rule (top_k) allocates as for the batch ranker. The
  served rows keep the ranker's ``model_version`` (the prior they were drawn
  around), so drift and the checks read them as before.

Nothing for D reads an event of D or later.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from metro_assets.bandit.environment import _hash_uniform
from metro_assets.bandit.learning import NEGATIVE_SHARE, fit_logistic, sigmoid
from metro_assets.errors import DataError
from metro_assets.features.compute import feature_matrix, stored_matrix
from metro_assets.ranking.models import _lr_design
from metro_assets.ranking.scoring import PAIRS_PER_BATCH, selected_model
from metro_assets.ranking.training import as_matrix
from metro_assets.simulation.oracle import WEEK
from metro_assets.warehouse import replace_partitions_sql

PRIOR_SD = 0.5  # per standardised coefficient around the weekly ranker's: the daily data moves it
_SAMPLING_STREAM = 51

_LABELLED = """
with shown as (
    select customer_id, offer_id, min(shown_timestamp) as shown_timestamp
    from impressions
    where shown_timestamp >= $window_start and shown_timestamp < $day
    group by customer_id, offer_id
)
select s.customer_id, s.offer_id, s.shown_timestamp::date as day,
       (select min(date_diff('day', s.shown_timestamp::date, r.redeemed_timestamp::date)) from redemptions r
        where r.customer_id = s.customer_id and r.offer_id = s.offer_id
          and r.redeemed_timestamp >= s.shown_timestamp
          and r.redeemed_timestamp < least(s.shown_timestamp + interval 7 day, $day)) as delay
from shown s
order by day, customer_id, offer_id
"""


def _design(X: np.ndarray, lr: dict) -> np.ndarray:
    """The ranker's standardised design (median-filled values and missing flags) with the intercept first."""
    z = (_lr_design(X, np.asarray(lr["medians"])) - np.asarray(lr["mean"])) / np.asarray(lr["scale"])
    return np.column_stack([np.ones(len(z)), z])


def fit_posterior(con: duckdb.DuckDBPyConnection, day: date, seed: int, weeks: int = 8) -> dict:
    """The Laplace posterior of day ``day`` from the log before it (one ``bandit_posteriors`` row).

    Raises
    ------
    DataError
        No logistic-regression ranker on or before ``day`` (the prior), or no impression in the window.
    """
    version, stored = selected_model(con, day, kind="logistic_regression")
    lr = json.loads(stored.blob)
    shown = con.sql(_LABELLED, params={"window_start": day - timedelta(weeks=weeks), "day": day}).pl()
    if shown.height == 0:
        raise DataError(f"no impressions in the {weeks} weeks before {day} to update the bandit posterior: "
                        "materialize the raw data of those days first")
    age = (pl.lit(day) - pl.col("day")).dt.total_days().clip(0, WEEK)
    shown = shown.with_columns(label=pl.col("delay").is_not_null(), age=age)
    closed = shown.filter(pl.col("age") >= WEEK)
    delays = closed["delay"].drop_nulls().to_numpy().astype(np.int64)
    if len(delays) >= 20:
        counts = np.bincount(np.clip(delays, 0, WEEK - 1), minlength=WEEK)
        cdf = np.r_[0.0, np.cumsum(counts) / counts.sum()]
    else:
        cdf = np.arange(WEEK + 1) / WEEK
    # negatives sampled like the ranker's training set, by a hash of the pair and day (the same every day)
    u = _hash_uniform(seed, _SAMPLING_STREAM + 1, shown["customer_id"].to_numpy(), shown["offer_id"].to_numpy(), 0)
    keep = shown["label"].to_numpy() | (u < NEGATIVE_SHARE)
    sample = shown.filter(pl.Series(keep))
    con.register("posterior_requests", sample.select("customer_id", "offer_id", "day").to_arrow())
    try:
        features = feature_matrix(con, "posterior_requests")
    finally:
        con.unregister("posterior_requests")
    sample = sample.join(features, on=["customer_id", "offer_id", "day"], how="left").sort(
        "day", "customer_id", "offer_id")
    y = sample["label"].to_numpy().astype(float)
    w = np.where(y > 0, 1.0, cdf[sample["age"].to_numpy()] / NEGATIVE_SHARE)
    Z = _design(as_matrix(sample, stored.features), lr)
    # the ranker trained on sampled negatives: its intercept moves by log(rate) to be a probability's
    prior_mean = np.r_[lr["intercept"] + np.log(max(stored.sampling_rate, 1e-9)), lr["coef"]]
    precision = np.r_[1.0, np.full(len(lr["coef"]), 1.0 / PRIOR_SD ** 2)]
    post = fit_logistic(Z, y, w, prior_mean, precision, start=prior_mean)
    return {"day": day, "model_version": version, "features": list(stored.features),
            "posterior": json.dumps({"medians": lr["medians"], "mean": lr["mean"], "scale": lr["scale"],
                                     "coef_mean": post.mean.tolist(), "coef_cov": post.cov.tolist()}),
            "impressions": int(shown.height), "positives": int(shown["label"].sum()),
            "rows_fitted": int(sample.height)}


def write_posterior(con: duckdb.DuckDBPyConnection, row: dict) -> None:
    """Replace day's ``bandit_posteriors`` row in one transaction (one atomic overwrite on Delta)."""
    columns = ("day", "model_version", "features", "posterior", "impressions", "positives", "rows_fitted")
    select = "SELECT " + ", ".join(f"?::{t} AS {c}" for c, t in zip(columns, (
        "DATE", "VARCHAR", "VARCHAR[]", "VARCHAR", "INTEGER", "INTEGER", "INTEGER")))
    replace_partitions_sql(con, "bandit_posteriors", select, [row[c] for c in columns],
                           row["day"], row["day"] + timedelta(days=1))


def load_posterior(con: duckdb.DuckDBPyConnection, day: date) -> tuple[str, list[str], dict]:
    """(ranker version, features, posterior) of ``day``; a one-line DataError when it was not fitted."""
    rows = con.execute("SELECT model_version, features, posterior FROM bandit_posteriors WHERE day = ?",
                       [day]).fetchall()
    if not rows:
        raise DataError(f"METRO_POLICY=thompson: no bandit_posterior for {day}: materialize bandit_posterior "
                        f"for {day} (daily_pipeline does) before recommendations")
    version, features, posterior = rows[0]
    return version, list(features), json.loads(posterior)


def thompson_pool_scores(con: duckdb.DuckDBPyConnection, day: date, seed: int) -> tuple[str, pl.DataFrame]:
    """Each pool pair of ``day`` scored by a draw from the day's posterior: (ranker version, scored frame).

    The frame has ``customer_id``, ``offer_id``, ``strategy``, ``score`` like
    :func:`metro_assets.ranking.scoring.score_pool`'s.
    """
    version, features, post = load_posterior(con, day)
    mean = np.asarray(post["coef_mean"])
    chol = np.linalg.cholesky(np.asarray(post["coef_cov"]) + 1e-10 * np.eye(len(mean)))
    pairs = con.execute("select count(*) from candidate_pool where day = ?", [day]).fetchall()[0][0]
    batches = max(1, -(-pairs // PAIRS_PER_BATCH))
    out = []
    try:
        for b in range(batches):  # a loop over batches of pairs, not rows
            con.execute(
                "create or replace temp table thompson_requests as select customer_id, offer_id, day, strategy "
                f"from candidate_pool where day = ? and customer_id % {batches} = {b}", [day])
            frame = stored_matrix(con, "thompson_requests", day, carry=("strategy",)).sort("customer_id", "offer_id")
            Z = _design(as_matrix(frame, features), post)
            sd = np.sqrt(np.einsum("ij,ij->i", Z @ chol, Z @ chol))  # the logit's posterior spread: |L' z|
            u = _hash_uniform(seed, _SAMPLING_STREAM, frame["customer_id"].to_numpy(), frame["offer_id"].to_numpy(),
                              day.toordinal())
            draw = Z @ mean + sd * _normal(u)
            out.append(frame.select("customer_id", "offer_id", "strategy").with_columns(score=pl.Series(sigmoid(draw))))
    finally:
        con.execute("drop table if exists thompson_requests")
    scored = pl.concat(out) if out else pl.DataFrame(
        schema={"customer_id": pl.Int64, "offer_id": pl.Int64, "strategy": pl.Utf8, "score": pl.Float64})
    return version, scored


def _normal(u: np.ndarray) -> np.ndarray:
    """Standard normal quantiles of uniforms in (0, 1)."""
    from scipy.special import ndtri

    return ndtri(u)
