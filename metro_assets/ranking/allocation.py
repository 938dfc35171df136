"""The allocation step between scoring and the top 10: the objective's value, within every offer's cap.

Scoring gives each pool pair a calibrated ``p_redeem`` (and, where an uplift
learner ran, a predicted ``uplift``). The allocation turns them into each
customer's list:

* **value** of a pair, by the objective (``METRO_OBJECTIVE``):
  ``redemptions``: ``p_redeem`` (today's behaviour); ``incremental_margin``:
  the expected incremental margin of showing it,
  ``uplift x gross x margin rate - p_redeem x discount`` (:func:`pair_value`),
  where pairs with a negative predicted uplift or a value <= 0 are never
  shown (a list may then hold fewer than ten offers, or none).
* **per-customer limits**: ``k`` offers, at most ``max_per_category`` per
  category, never the same product twice (:func:`scoring.top_k`, the one
  selection rule).
* **per-offer caps across all customers of the day**: what is left of an
  offer's ``max_redemptions`` (its cap minus the redemptions before the day)
  and, optionally, of a money budget (discount money, ``METRO_OFFER_BUDGET``
  minus the discount already paid). A pair consumes ``p_redeem`` of the
  redemption cap and ``p_redeem x discount`` of the budget: the expected
  redemptions of the offer shown at position 1, an upper bound at any
  position (lower slots are noticed less), so the sum over the day's lists
  never exceeds what is left, whatever ranks the pairs end up in.

Greedy by value density, vectorised in rounds: every customer takes its
best list (:func:`top_k`); each offer whose chosen pairs overflow a cap keeps
the prefix of them in order of value per share of the cap used (its densest
pairs) that fits, loses its other pairs of the pool and is frozen; the
customers who lost a pair take their next best; repeat until no offer
overflows. A frozen offer only loses pairs later, so it stays within its
cap; each round freezes at least one offer, so the loop ends. The outcome is
checked before it is returned (:class:`Allocation`).

Examples
--------
>>> import polars as pl
>>> pairs = pl.DataFrame({"customer_id": [1, 1, 2, 2], "offer_id": [7, 8, 7, 8], "product_id": [70, 80, 70, 80],
...                       "category": ["a", "b", "a", "b"], "value": [0.9, 0.1, 0.8, 0.2],
...                       "p_redeem": [0.6, 0.1, 0.6, 0.1], "discount": [1.0] * 4})
>>> caps = pl.DataFrame({"offer_id": [7], "remaining_redemptions": [1.0], "remaining_budget": [None]})
>>> out = allocate(pairs, k=1, caps=caps)
>>> out.chosen.sort("customer_id")["offer_id"].to_list()  # offer 7 fits once: the denser customer 1 gets it
[7, 8]
>>> out.binding["offer_id"].to_list(), round(out.value_lost, 3)
([7], 0.6)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import polars as pl

from metro_assets.errors import DataError
from metro_assets.ranking import uplift as uplift_models
from metro_assets.features.compute import stored_matrix
from metro_assets.ranking.scoring import MAX_PER_CATEGORY, offer_items, score_pool, selected_model, top_k
from metro_assets.ranking.training import as_matrix
from metro_assets.simulation import oracle
from metro_assets.simulation.oracle import position_attention

OBJECTIVES = ("redemptions", "incremental_margin")
#: rounds of the greedy pass; each freezes at least one offer, so this bounds nothing real
MAX_ROUNDS = 1_000
CAP_SCHEMA = {"offer_id": pl.Int64, "remaining_redemptions": pl.Float64, "remaining_budget": pl.Float64}


class AllocationError(RuntimeError):
    """The allocation broke a cap or a per-customer limit (a bug, never a user's mistake)."""


@dataclass
class Allocation:
    """The day's lists and what the caps cost."""

    chosen: pl.DataFrame       # the pairs' columns plus rank (1 = best), per customer
    binding: pl.DataFrame      # offer_id, cap kind, remaining, used (expected), pairs dropped
    value: float               # sum of attention(rank) x value of the lists
    value_unconstrained: float  # the same without the per-offer caps
    rounds: int
    dropped_negative: int      # pairs never shown: negative predicted uplift or value <= 0 (margin objective)

    @property
    def value_lost(self) -> float:
        """Value the caps cost (attention-weighted, the objective's units)."""
        return self.value_unconstrained - self.value


def pair_value(objective: str, p_redeem: pl.Expr, uplift: pl.Expr, gross: pl.Expr, margin: pl.Expr,
               discount: pl.Expr) -> pl.Expr:
    """A pair's value at position 1 under ``objective``.

    ``redemptions``: p_redeem. ``incremental_margin``: uplift x gross x margin
    rate - p_redeem x discount (the extra sales' margin minus the discount paid
    on every redemption, sure things included).
    """
    if objective == "redemptions":
        return p_redeem
    if objective == "incremental_margin":
        return uplift * gross * margin - p_redeem * discount
    raise ValueError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")


def _attention_value(chosen: pl.DataFrame, value: str) -> float:
    if chosen.height == 0:
        return 0.0
    return float((position_attention(chosen["rank"].to_numpy()) * chosen[value].to_numpy()).sum())


def usage(chosen: pl.DataFrame) -> pl.DataFrame:
    """Per offer of the lists: expected redemptions (position 1) and expected discount money."""
    return chosen.group_by("offer_id").agg(
        used_redemptions=pl.col("p_redeem").sum(),
        used_budget=(pl.col("p_redeem") * pl.col("discount")).sum(),
    )


def _over(use: pl.DataFrame, caps: pl.DataFrame) -> pl.DataFrame:
    """Offers whose use exceeds a cap (a tiny tolerance for float sums)."""
    x = use.join(caps, on="offer_id", how="inner")
    return x.filter(
        (pl.col("used_redemptions") > pl.col("remaining_redemptions") * (1 + 1e-9) + 1e-12).fill_null(False)
        | (pl.col("used_budget") > pl.col("remaining_budget") * (1 + 1e-9) + 1e-9).fill_null(False))


def allocate(pairs: pl.DataFrame, k: int = 10, max_per_category: int | None = MAX_PER_CATEGORY,
             caps: pl.DataFrame | None = None, value: str = "value", drop_below: float | None = None) -> Allocation:
    """Each customer's list under the per-customer limits and the per-offer caps of the day.

    Parameters
    ----------
    pairs : polars.DataFrame
        ``customer_id``, ``offer_id``, ``product_id``, ``category``, the
        ``value`` column, ``p_redeem`` and ``discount`` (money per
        redemption); other columns are kept.
    k, max_per_category : int
        The per-customer limits (see :func:`scoring.top_k`).
    caps : polars.DataFrame, optional
        ``offer_id``, ``remaining_redemptions``, ``remaining_budget`` (null:
        no such cap); offers absent are uncapped. Negative remainders count as 0.
    value : str
        The column to maximise.
    drop_below : float, optional
        Pairs whose value is not above it are never shown (``0.0`` under the
        margin objective; the caller drops negative predicted uplift too).

    Returns
    -------
    Allocation

    Raises
    ------
    AllocationError
        The result breaks a cap or a limit (never expected: it is checked).
    """
    dropped = 0
    pool = pairs
    if drop_below is not None:
        pool = pool.filter(pl.col(value) > drop_below)
        dropped = pairs.height - pool.height
    free = top_k(pool, k, max_per_category, score=value)
    value_free = _attention_value(free, value)
    if caps is None or caps.height == 0:
        binding = pl.DataFrame(schema={"offer_id": pl.Int64, "cap": pl.Utf8, "remaining": pl.Float64,
                                       "used": pl.Float64, "pairs_dropped": pl.Int64})
        return Allocation(free, binding, value_free, value_free, 1, dropped)
    caps = caps.select(pl.col("offer_id").cast(pl.Int64),
                       pl.col("remaining_redemptions").cast(pl.Float64).clip(lower_bound=0.0),
                       pl.col("remaining_budget").cast(pl.Float64).clip(lower_bound=0.0))
    chosen, frozen, removed = free, pl.DataFrame(schema={"offer_id": pl.Int64}), []
    rounds = 1
    while True:
        over = _over(usage(chosen), caps).join(frozen, on="offer_id", how="anti")
        if over.height == 0:
            break
        rounds += 1
        if rounds > MAX_ROUNDS:  # cannot happen: each round freezes an offer
            raise AllocationError(f"allocation did not settle in {MAX_ROUNDS} rounds")
        # the overflowing offers keep their densest chosen pairs that fit: value per share of the tighter cap
        mine = chosen.join(over.select("offer_id", "remaining_redemptions", "remaining_budget"), on="offer_id")
        share = pl.max_horizontal(
            (pl.col("p_redeem") / pl.col("remaining_redemptions")).fill_null(0.0),
            (pl.col("p_redeem") * pl.col("discount") / pl.col("remaining_budget")).fill_null(0.0))
        mine = (mine.with_columns(_density=pl.col(value) / share.clip(lower_bound=1e-300))
                .sort(["offer_id", "_density", "customer_id"], descending=[False, True, False])
                .with_columns(_red=pl.col("p_redeem").cum_sum().over("offer_id"),
                              _bud=(pl.col("p_redeem") * pl.col("discount")).cum_sum().over("offer_id")))
        fits = ((pl.col("_red") <= pl.col("remaining_redemptions")).fill_null(True)
                & (pl.col("_bud") <= pl.col("remaining_budget")).fill_null(True))
        # a prefix: once a pair does not fit, no later one of the offer is kept (cumulative sums only grow)
        kept = mine.filter(fits.cast(pl.Int8).cum_min().over("offer_id") == 1).select("customer_id", "offer_id")
        lost = pool.join(over.select("offer_id"), on="offer_id", how="semi").join(
            kept, on=["customer_id", "offer_id"], how="anti")
        removed.append(lost.group_by("offer_id").len("pairs_dropped"))
        pool = pool.join(lost.select("customer_id", "offer_id"), on=["customer_id", "offer_id"], how="anti")
        frozen = pl.concat([frozen, over.select("offer_id")])
        # only the customers who lost a pair choose again: every other pool is as it was
        again = lost.select("customer_id").unique()
        chosen = pl.concat([chosen.join(again, on="customer_id", how="anti"),
                            top_k(pool.join(again, on="customer_id", how="semi"), k, max_per_category, score=value)])
    _check(chosen, caps, k, max_per_category)
    use = usage(chosen)
    dropped_pairs = (pl.concat(removed).group_by("offer_id").agg(pl.col("pairs_dropped").sum()) if removed
                     else pl.DataFrame(schema={"offer_id": pl.Int64, "pairs_dropped": pl.UInt32}))
    binding = (
        frozen.join(caps, on="offer_id").join(use, on="offer_id", how="left").join(dropped_pairs, on="offer_id",
                                                                                     how="left")
        .select("offer_id",
                cap=pl.when(pl.col("remaining_budget").is_not_null()
                            & (pl.col("remaining_redemptions").is_null()
                               | (pl.col("used_budget").fill_null(0.0) / pl.col("remaining_budget")
                                  >= pl.col("used_redemptions").fill_null(0.0) / pl.col("remaining_redemptions"))))
                .then(pl.lit("budget")).otherwise(pl.lit("redemptions")),
                remaining=pl.coalesce("remaining_redemptions", "remaining_budget"),
                used_redemptions=pl.col("used_redemptions").fill_null(0.0),
                used_budget=pl.col("used_budget").fill_null(0.0),
                pairs_dropped=pl.col("pairs_dropped").fill_null(0).cast(pl.Int64))
        .sort("offer_id")
    )
    return Allocation(chosen, binding, _attention_value(chosen, value), value_free, rounds, dropped)


def _check(chosen: pl.DataFrame, caps: pl.DataFrame, k: int, max_per_category: int | None) -> None:
    """Raise :class:`AllocationError` when a list breaks a limit or an offer a cap."""
    over = _over(usage(chosen), caps)
    if over.height:
        first = over.row(0, named=True)
        raise AllocationError(f"offer {first['offer_id']} is allocated {first['used_redemptions']:.3f} expected "
                              f"redemptions, more than the {first['remaining_redemptions']} left")
    per = chosen.group_by("customer_id").agg(n=pl.len(), products=pl.col("product_id").n_unique())
    if per.height and (int(per["n"].max()) > k or bool((per["n"] != per["products"]).any())):
        raise AllocationError("a list holds more than k offers or a product twice")
    if max_per_category is not None and chosen.height:
        worst = chosen.group_by("customer_id", "category").len()["len"].max()
        if int(worst) > max_per_category:
            raise AllocationError(f"a list holds {worst} offers of one category (limit {max_per_category})")


def summary(allocation: Allocation) -> dict[str, float | int]:
    """Figures for the materialization's metadata."""
    return {
        "caps_binding": allocation.binding.height,
        "value": round(allocation.value, 4),
        "value_unconstrained": round(allocation.value_unconstrained, 4),
        "value_lost_to_caps": round(allocation.value_lost, 4),
        "allocation_rounds": allocation.rounds,
        "pairs_never_shown": allocation.dropped_negative,
    }



def offer_economics(con: duckdb.DuckDBPyConnection, offer_ids: pl.Series) -> pl.DataFrame:
    """Per offer: depth, units, shelf value, discount and margin rate of one redemption.

    One redemption buys ``units`` items (bogo: 1 + free items, else 1) worth
    ``gross = units * base_price`` and takes ``discount = depth * gross`` off
    (the depth the oracle uses); ``margin`` is the product's gross margin rate.
    """
    con.register("economics_offer_ids", pl.DataFrame({"offer_id": offer_ids.unique()}).to_arrow())
    try:
        x = con.sql("""SELECT o.offer_id, o.discount_type, o.discount_value, o.start_date, o.end_date,
                              p.base_price, coalesce(p.margin, 0.0) AS margin
                       FROM offers o JOIN products p USING (product_id)
                       WHERE o.offer_id IN (SELECT offer_id FROM economics_offer_ids)""").pl()
    finally:
        con.unregister("economics_offer_ids")
    depth = oracle.discount_depth(x["discount_type"].to_numpy(), x["discount_value"].cast(pl.Float64).to_numpy(),
                                  x["base_price"].to_numpy())
    bogo = x["discount_type"].str.strip_chars().str.to_lowercase() == "bogo"
    units = pl.when(bogo).then(1.0 + x["discount_value"].cast(pl.Float64)).otherwise(1.0)
    return (
        x.select("offer_id", "start_date", "end_date", "base_price", "margin", units=units)
        .with_columns(depth=pl.Series(np.nan_to_num(depth)))
        .with_columns(gross=pl.col("units") * pl.col("base_price"))
        .with_columns(discount=pl.col("depth") * pl.col("gross"))
        .unique("offer_id")
    )


def offer_caps(con: duckdb.DuckDBPyConnection, day: date, budget: float | None = None) -> pl.DataFrame:
    """What is left of each capped offer at the start of ``day`` (only events before it are read).

    ``remaining_redemptions`` = ``max_redemptions`` - redemptions before the
    day; ``remaining_budget`` (when ``budget`` is given: ``METRO_OFFER_BUDGET``,
    discount money per offer) = budget - the discount paid on its redemptions
    before the day (each at :func:`offer_economics`' discount). Offers with
    neither cap are absent.
    """
    used = con.sql("""SELECT o.offer_id, o.max_redemptions, count(r.offer_id) AS redeemed
                      FROM offers o LEFT JOIN redemptions r ON r.offer_id = o.offer_id AND r.day < $day
                      WHERE o.day < $day AND o.end_date >= $day GROUP BY ALL""", params={"day": day}).pl()
    if budget is None:
        used = used.filter(pl.col("max_redemptions").is_not_null())
    econ = offer_economics(con, used["offer_id"]).select("offer_id", "discount")
    return used.join(econ, on="offer_id", how="left").select(
        pl.col("offer_id").cast(pl.Int64),
        remaining_redemptions=(pl.col("max_redemptions") - pl.col("redeemed")).cast(pl.Float64),
        remaining_budget=(pl.lit(budget, dtype=pl.Float64) - pl.col("redeemed") * pl.col("discount").fill_null(0.0))
        if budget is not None else pl.lit(None, dtype=pl.Float64),
    ).sort("offer_id")


@dataclass
class DayAllocation:
    """A run date's allocated lists and where they came from."""

    allocation: Allocation
    model_version: str            # the ranker that gave p_redeem
    uplift_version: str | None    # the uplift learner that gave uplift (None: none trained yet)
    pairs_scored: int
    objective: str


def scored_pairs(con: duckdb.DuckDBPyConnection, day: date, uplift_kind: str | None = None,
                 with_uplift: bool = True, scores: tuple[str, pl.DataFrame] | None = None
                 ) -> tuple[pl.DataFrame, str, str | None]:
    """The day's pool with ``p_redeem`` (the serving ranker), ``uplift`` (the best uplift learner, or
    ``uplift_kind``; null without one, or when ``with_uplift`` is false), the offer's product, category
    and economics. ``scores`` (version, pool frame with ``score``) replaces the ranker's scores, e.g.
    Thompson sampling's draws (``METRO_POLICY=thompson``)."""
    found = uplift_models.newest_uplift(con, day, uplift_kind) if with_uplift else None
    if scores is None:
        version, model = selected_model(con, day)
        extra = {"uplift": found[1]} if found else {}
        scored = score_pool(con, day, model, extra=extra).rename({"score": "p_redeem"})
    else:
        version, scored = scores[0], scores[1].rename({"score": "p_redeem"})
        if found:
            scored = scored.with_columns(uplift=predict_pairs(con, day, scored, found[1]))
    if not found:
        scored = scored.with_columns(uplift=pl.lit(None, dtype=pl.Float64))
    econ = offer_economics(con, scored["offer_id"]).select("offer_id", "gross", "margin", "discount")
    pairs = scored.join(offer_items(con), on="offer_id", how="left").join(econ, on="offer_id", how="left")
    return pairs, version, (found[0] if found else None)


def predict_pairs(con: duckdb.DuckDBPyConnection, day: date, pairs: pl.DataFrame, model) -> pl.Series:
    """``model``'s prediction for each (customer_id, offer_id) of ``pairs`` from the day's feature tables,
    in ``pairs``' order (e.g. the uplift of the chosen lists only: ~10x fewer rows than the pool)."""
    keys = pairs.select("customer_id", "offer_id").with_columns(day=pl.lit(day), _i=pl.int_range(pl.len()))
    con.register("allocation_requests", keys.to_arrow())
    try:
        frame = stored_matrix(con, "allocation_requests", day, carry=("_i",)).sort("_i")
    finally:
        con.unregister("allocation_requests")
    return pl.Series(model.predict(as_matrix(frame, model.features)))


def allocate_pairs(pairs: pl.DataFrame, objective: str, caps: pl.DataFrame | None, k: int,
                   max_per_category: int | None) -> Allocation:
    """The allocation of scored pairs (see :func:`scored_pairs`) under ``objective``: ``value`` holds the
    objective's value; under ``incremental_margin`` a pair with negative predicted uplift is never shown."""
    value = pair_value(objective, pl.col("p_redeem"), pl.col("uplift"), pl.col("gross").fill_null(0.0),
                       pl.col("margin").fill_null(0.0), pl.col("discount").fill_null(0.0))
    x = pairs.with_columns(value=value, discount=pl.col("discount").fill_null(0.0))
    if objective == "incremental_margin":
        negative = x.filter(pl.col("uplift").is_null() | (pl.col("uplift") < 0)).height
        out = allocate(x.filter(pl.col("uplift") >= 0), k, max_per_category, caps, drop_below=0.0)
        out.dropped_negative += negative
        return out
    return allocate(x, k, max_per_category, caps)


def allocate_day(con: duckdb.DuckDBPyConnection, day: date, objective: str = "redemptions", k: int = 10,
                 max_per_category: int | None = MAX_PER_CATEGORY, budget: float | None = None,
                 scores: tuple[str, pl.DataFrame] | None = None) -> DayAllocation:
    """Score the day's pool and allocate it: what ``recommendations`` stores for ``day``.

    ``scores``: see :func:`scored_pairs` (Thompson sampling's draws instead of the ranker's scores).

    Raises
    ------
    DataError
        No ranker for the day; or ``incremental_margin`` without an uplift learner.
    """
    # the uplift of every pool pair only when it decides the lists; else only the lists' (10x fewer to predict)
    margin = objective == "incremental_margin"
    pairs, version, uplift_version = scored_pairs(con, day, with_uplift=margin, scores=scores)
    if margin and uplift_version is None:
        raise DataError(f"METRO_OBJECTIVE=incremental_margin needs an uplift learner trained on or before {day}: "
                        "run the retrain job (its ranker_model trains them; they need exploration slots and a "
                        "holdout in the impressions), or set METRO_OBJECTIVE=redemptions")
    out = allocate_pairs(pairs, objective, offer_caps(con, day, budget), k, max_per_category)
    if not margin:
        found = uplift_models.newest_uplift(con, day)
        if found:
            uplift_version = found[0]
            out.chosen = out.chosen.with_columns(uplift=predict_pairs(con, day, out.chosen, found[1]))
    return DayAllocation(out, version, uplift_version, pairs.height, objective)
