"""Off-policy estimates of a policy's redemptions@10 from the logged impressions and their propensities.

What a retailer with real data can compute (no simulator truth): the
logging policy recorded, for each impression, its slot (``position``) and
the probability it had of showing that offer in that slot
(``propensity``); its exploration share keeps every eligible offer's
probability above zero. A target policy is a deterministic top-k per
customer, so item-level importance sampling applies:

* A *list* is what one customer was shown on one day of the log window, the
  7 days from the run date D on: the target's top-k is decided with the
  events before D, so it cannot have seen these impressions or their
  outcomes (a window before D would let a model pick exactly the offers it
  saw redeemed, and grade itself on them). An impression's reward is a
  redemption of its offer within 7 days of it; impressions whose 7 days are
  not all in the warehouse yet are left out (evaluated a week after D, only
  D's own impressions count; a backfill later uses the whole week).
* Inclusion probability: an exploration slot draws uniformly, so its offer's
  chance of being in the list is propensity x list length; a legacy slot's
  offer can only be in that slot: the propensity itself.
* Weight of an impression whose offer is in the target's top-k for that
  customer: ``w0 = min(1 / inclusion, max_weight)``, and ``w = w0 x
  attention(r) / attention(s)``, which moves the reward seen at slot s to the
  target's slot r with the position model
  (:func:`metro_assets.simulation.oracle.position_attention`, examination ∝
  position^-0.5; on real data estimate it from the exploration slots).
  Other impressions weigh 0.
* Slots: the target's offers per list; live slots: those live on the list's
  day (the logging policy could show only those).
* ``ips`` = Σ w·r / Σ live slots x mean slots (with every offer live:
  Σ w·r / lists, the textbook IPS); ``snips`` = Σ w·r / Σ w0 x mean slots
  (self-normalised: Σ w0 estimates the live slots, and the realised total
  replaces its expectation, trading a little bias for much less variance).
  Both are redemptions of the target's top-k per list, i.e. per customer the
  logging policy reached.
* ``ess`` = (Σ w)² / Σ w²: how many impressions the estimate is really worth.

Only customers with a target ranking (those of D's candidate pool) count.
Clipping at ``max_weight`` bounds the variance and biases the estimate down
where it binds; the evaluation notes how many weights it clipped.

Examples
--------
>>> import polars as pl
>>> log = pl.DataFrame({"customer_id": [1, 1, 2], "offer_id": [7, 8, 7], "list_id": [1, 1, 2],
...                     "propensity": [0.5, 0.5, 0.25], "reward": [1, 0, 0]})
>>> target = pl.DataFrame({"customer_id": [1, 2], "offer_id": [7, 7]})
>>> per = per_customer(log, target)
>>> est = estimates(per, replicates=50)
>>> round(est["ips_redemptions_at_10"][0], 3), round(est["snips_redemptions_at_10"][0], 3)
(1.0, 0.333)
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import polars as pl

from metro_assets.monitoring.bootstrap import REPLICATES, interval, replicate_sums
from metro_assets.simulation import oracle

MAX_WEIGHT = 1000.0   # clip: 1 / propensity above this counts as this
LOG_DAYS = 7          # the log window: the run date and the 6 days after it
REWARD_DAYS = 7       # an impression's reward: a redemption of its offer within this many days
METRICS = ("ips_redemptions_at_10", "snips_redemptions_at_10", "ess")


def log_columns_missing(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The columns off-policy estimation needs that ``impressions`` lacks (empty: it can run)."""
    have = {r[0] for r in con.sql("SELECT column_name FROM information_schema.columns "
                                  "WHERE table_name = 'impressions'").fetchall()}
    return [c for c in ("propensity", "position", "is_exploration") if c not in have]


def logged_lists(con: duckdb.DuckDBPyConnection, day: date) -> pl.DataFrame:
    """The impressions of the log window of ``day`` with their propensity, reward and offer dates.

    Returns ``customer_id``, ``offer_id``, ``list_id`` (customer and day),
    ``day``, ``propensity``, ``reward`` (0/1). Impressions without a positive
    propensity are left out (an import may log some without one).
    """
    return con.sql(
        """
        WITH shown AS (
            SELECT customer_id, offer_id, day, min(propensity) AS propensity, min(position) AS position,
                   coalesce(bool_or(is_exploration), false) AS is_exploration
            FROM impressions
            WHERE day >= $day AND day < $day::DATE + $log_days AND propensity > 0
              -- only impressions whose whole reward week is in the warehouse
              AND day + $reward_days - 1 <= (SELECT max(day) FROM orders)
            GROUP BY ALL
        )
        SELECT s.customer_id, s.offer_id, s.day,
               hash(s.customer_id, s.day) AS list_id,
               s.propensity, s.position, s.is_exploration,
               (count(r.offer_id) > 0)::INTEGER AS reward
        FROM shown s
        LEFT JOIN redemptions r
          ON r.customer_id = s.customer_id AND r.offer_id = s.offer_id
         AND r.day >= s.day AND r.day < s.day + $reward_days
        GROUP BY ALL
        """,
        params={"day": day, "log_days": LOG_DAYS, "reward_days": REWARD_DAYS},
    ).pl()


def per_customer(log: pl.DataFrame, target: pl.DataFrame, max_weight: float = MAX_WEIGHT) -> pl.DataFrame:
    """Per customer of both the log and the target: lists, slots, live slots and the weight sums.

    Parameters
    ----------
    log : polars.DataFrame
        ``customer_id``, ``offer_id``, ``list_id``, ``propensity``, ``reward``;
        optionally ``day`` (target offers then count as live on a list's day
        only between their ``start_date`` and ``end_date``, columns of
        ``target``), ``position`` (the slot shown, 1 = top) and
        ``is_exploration`` (the slot was drawn at random: its per-slot
        propensity is the same in every slot, so the chance the offer was in
        the list at all is propensity x list length).
    target : polars.DataFrame
        The target policy's top-k: ``customer_id``, ``offer_id``, optionally
        ``rank`` (with ``position``: the reward seen at slot s is moved to
        slot r by attention(r) / attention(s)), ``start_date``, ``end_date``.
    max_weight : float
        Clip of the inverse inclusion probability.

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``lists``, ``slots`` (Σ over the customer's lists of
        the target's list length), ``live`` (of those, offers live that day),
        ``wr`` (Σ w·r), ``w0`` (Σ clipped inverse inclusion probabilities),
        ``w`` (Σ w), ``w2`` (Σ w²), ``clipped`` (impressions whose weight was clipped).
    """
    extra = [c for c in ("rank", "start_date", "end_date") if c in target.columns]
    t = target.select("customer_id", "offer_id", *extra)
    log = log.with_columns(_size=pl.len().over("list_id")).join(t.select("customer_id").unique(), on="customer_id",
                                                                how="semi")
    lists = log.select("customer_id", "list_id", *(["day"] if "day" in log.columns else [])).unique()
    size = t.group_by("customer_id").agg(k=pl.len())
    if "day" in lists.columns and "start_date" in t.columns:
        live = (lists.join(t, on="customer_id")
                .filter((pl.col("start_date") <= pl.col("day")) & (pl.col("end_date") >= pl.col("day")))
                .group_by("customer_id").agg(live=pl.len()))
    else:
        live = lists.join(size, on="customer_id").group_by("customer_id").agg(live=pl.col("k").sum())
    counts = (lists.group_by("customer_id").agg(lists=pl.len())
              .join(size, on="customer_id").with_columns(slots=pl.col("lists") * pl.col("k")).drop("k"))
    inclusion = pl.col("propensity")
    if "is_exploration" in log.columns:
        inclusion = pl.when(pl.col("is_exploration").fill_null(False)).then(inclusion * pl.col("_size")) \
            .otherwise(inclusion)
    raw = 1.0 / inclusion
    shown = log.join(t, on=["customer_id", "offer_id"], how="inner")
    shift = np.ones(shown.height)
    if "rank" in shown.columns and "position" in shown.columns:
        # the position model: the reward seen at slot s, moved to the target's slot r
        slot = shown["position"].cast(pl.Float64).fill_null(shown["rank"].cast(pl.Float64)).to_numpy()
        shift = oracle.position_attention(shown["rank"].to_numpy()) / oracle.position_attention(slot)
    weights = (shown.with_columns(w0=raw.clip(upper_bound=max_weight), clipped=(raw > max_weight).cast(pl.Int64))
               .with_columns(w=pl.col("w0") * pl.Series(shift))
               .group_by("customer_id")
               .agg(wr=(pl.col("w") * pl.col("reward")).sum(), w2=(pl.col("w") ** 2).sum(), w=pl.col("w").sum(),
                    w0=pl.col("w0").sum(), clipped=pl.col("clipped").sum()))
    return (counts.join(live, on="customer_id", how="left").join(weights, on="customer_id", how="left")
            .with_columns(pl.col("live", "wr", "w0", "w", "w2", "clipped").fill_null(0).cast(pl.Float64))
            .select("customer_id", "lists", "slots", "live", "wr", "w0", "w", "w2", "clipped")
            .sort("customer_id"))


def _statistics(s: np.ndarray) -> np.ndarray:
    """IPS, SNIPS and ESS from sums (rows) of lists, slots, live, wr, w0, w, w2."""
    lists, slots, live, wr, w0, w, w2 = (s[:, i] for i in range(7))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_slots = slots / lists
        return np.column_stack([wr / live * mean_slots, wr / w0 * mean_slots, w ** 2 / w2])


def estimates(per: pl.DataFrame, replicates: int = REPLICATES,
              seed: int | list[int] = 0) -> dict[str, tuple[float, float, float]]:
    """``{metric: (value, ci_low, ci_high)}`` for IPS, SNIPS (redemptions per list) and ESS.

    Customers are resampled with Poisson weights (:mod:`.bootstrap`); ESS's
    interval is its bootstrap spread. Empty when no impression weighs anything.
    """
    cols = ["lists", "slots", "live", "wr", "w0", "w", "w2"]
    x = per.select(cols).to_numpy().astype(float) if per.height else np.zeros((0, len(cols)))
    if x.shape[0] == 0 or x[:, 5].sum() <= 0:
        return {}
    point = _statistics(x.sum(axis=0, keepdims=True))[0]
    low, high = interval(_statistics(replicate_sums(x, replicates, seed)))
    return {m: (float(point[i]), float(low[i]), float(high[i])) for i, m in enumerate(METRICS)}
