"""The oracle over the warehouse: true probabilities of any (customer, offer) pairs as of a day.

:func:`true_probabilities` evaluates exactly what the simulator evaluates for an
impression (:func:`metro_assets.simulation.world.impression_probabilities`),
but from the warehouse tables, for any pairs: the hidden traits come from the
``sim.*`` tables, the offer's product and discount from ``offers`` and
``products``, and the recency of the customer's last *regular* purchase in the
offer's category (orders that no redemption created) from ``orders``. One
set-based query gathers the inputs; :mod:`metro_assets.simulation.oracle`'s
NumPy functions turn them into probabilities.

Only evaluation reads this; features and the ranker never do. Imported data
has no oracle: :class:`OracleUnavailable` says so.

Examples
--------
>>> import duckdb
>>> from metro_assets.warehouse import ensure_schema
>>> con = duckdb.connect()
>>> ensure_schema(con)
>>> oracle_available(con)
False
"""

from __future__ import annotations

import re
from datetime import date

import duckdb
import numpy as np
import polars as pl

from metro_assets.simulation import oracle
from metro_assets.simulation.world import Shock

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class OracleUnavailable(LookupError):
    """The warehouse holds no simulator truth (imported data): oracle metrics cannot be computed."""


def oracle_available(con: duckdb.DuckDBPyConnection) -> bool:
    """Does the warehouse hold the simulator's hidden traits?"""
    return bool(con.sql("SELECT count(*) > 0 FROM (SELECT 1 FROM sim.customer_traits LIMIT 1)").fetchall()[0][0])


def _inputs_sql(pairs: str, day_expr: str) -> str:
    return f"""
    WITH req AS (
        SELECT DISTINCT customer_id, offer_id, {day_expr} AS day FROM {pairs}
    ),
    facts AS (
        SELECT r.customer_id, r.offer_id, r.day, p.category, p.brand, p.base_price,
               o.discount_type, o.discount_value, pt.share_in_category, pt.share_in_brand
        FROM req r
        JOIN offers o ON o.offer_id = r.offer_id
        JOIN products p ON p.product_id = o.product_id
        LEFT JOIN sim.product_traits pt ON pt.product_id = o.product_id
    ),
    regular_days AS (  -- days each requested customer bought in each category, without an offer
        SELECT DISTINCT o.customer_id, p.category, o.day
        FROM orders o
        JOIN order_items i ON i.order_id = o.order_id
        JOIN products p ON p.product_id = i.product_id
        WHERE o.customer_id IN (SELECT customer_id FROM req)
          AND o.day < (SELECT max(day) FROM req)
          AND o.order_id NOT IN (SELECT order_id FROM redemptions)
    ),
    recency AS (
        SELECT f.customer_id, f.offer_id, f.day, (f.day - rd.day)::DOUBLE AS days_since
        FROM facts f
        ASOF JOIN regular_days rd
          ON rd.customer_id = f.customer_id AND rd.category = f.category AND f.day > rd.day
    )
    SELECT f.customer_id, f.offer_id, f.day, f.brand, f.base_price, f.discount_type, f.discount_value,
           f.share_in_category, f.share_in_brand,
           ct.visit_rate, ct.basket_mean, ct.promo_sensitivity, ct.brand_loyalty, ct.promo_only, ct.discount_blind,
           cct.preference, cct.favourite_brand,
           rc.days_since
    FROM facts f
    LEFT JOIN sim.customer_traits ct ON ct.customer_id = f.customer_id
    LEFT JOIN sim.customer_category_traits cct ON cct.customer_id = f.customer_id AND cct.category = f.category
    LEFT JOIN recency rc ON rc.customer_id = f.customer_id AND rc.offer_id = f.offer_id AND rc.day = f.day
    """


def true_probabilities(con: duckdb.DuckDBPyConnection, pairs: str, day: date | None = None,
                       shock: Shock | None = None) -> pl.DataFrame:
    """The simulator's true (p_redeem, p_base) of each (customer, offer) pair as of the start of a day.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A warehouse holding simulated data (``sim.*`` tables filled).
    pairs : str
        A table or view with ``customer_id`` and ``offer_id`` (and ``day`` when
        ``day`` is None: each pair is then evaluated as of its own day).
    day : date, optional
        The day the offers would be shown. Only events before it are read.
    shock : world.Shock, optional
        The scenario the raw data was simulated with: on its days the
        redemption logit moves as the simulator moved it.

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``offer_id`` (``day`` too when ``day`` is None),
        ``p_redeem`` (chance of a redemption within a week of being shown the
        offer) and ``p_base`` (chance of buying the product that week anyway),
        one row per distinct pair. Pairs whose customer or product has no
        truth row get nulls.

    Raises
    ------
    OracleUnavailable
        The ``sim.*`` tables are empty (imported data has no oracle).
    ValueError
        ``pairs`` is not a table or view name.
    """
    if not _NAME.match(pairs):
        raise ValueError(f"pairs={pairs!r} is not a table or view name")
    if not oracle_available(con):
        raise OracleUnavailable("oracle unavailable: the warehouse holds no simulator truth "
                                "(the sim.* tables are empty, as for imported data)")
    day_expr = "day" if day is None else "$day::DATE"
    params = None if day is None else {"day": day}
    x = con.sql(_inputs_sql(pairs, day_expr), params=params).pl()
    if x.height == 0:
        schema = {"customer_id": pl.Int64, "offer_id": pl.Int64, "day": pl.Date,
                  "p_redeem": pl.Float64, "p_base": pl.Float64}
        out = pl.DataFrame(schema=schema)
        return out if day is None else out.drop("day")
    col = {c: x[c].to_numpy() for c in x.columns if c not in ("customer_id", "offer_id", "day")}
    f = {c: x[c].cast(pl.Float64).to_numpy() for c in (
        "base_price", "discount_value", "share_in_category", "share_in_brand", "visit_rate", "basket_mean",
        "promo_sensitivity", "brand_loyalty", "preference", "days_since")}
    match = x["favourite_brand"].eq(x["brand"]).fill_null(False).to_numpy()
    promo_only = x["promo_only"].fill_null(False).to_numpy()
    discount_blind = x["discount_blind"].fill_null(False).to_numpy()
    depth = oracle.discount_depth(col["discount_type"], f["discount_value"], f["base_price"])
    logit = np.zeros(x.height)
    if shock is not None:
        days = x["day"].to_numpy().astype("datetime64[D]")
        on = (days >= np.datetime64(shock.start, "D")) & (days < np.datetime64(shock.end, "D"))
        logit = np.where(on, shock.redemption, 0.0)
    share = oracle.product_share(match, f["brand_loyalty"], f["share_in_category"], f["share_in_brand"])
    p_base = oracle.baseline_purchase_probability(f["visit_rate"], f["basket_mean"], f["preference"], share)
    uplift = oracle.uplift_probability(depth, f["preference"], f["promo_sensitivity"], f["days_since"], match,
                                       f["brand_loyalty"], promo_only, discount_blind, logit)
    p_redeem = oracle.redemption_probability(p_base, uplift)
    keys = ["customer_id", "offer_id"] + (["day"] if day is None else [])
    return x.select(keys).with_columns(
        p_redeem=pl.Series(p_redeem).fill_nan(None), p_base=pl.Series(p_base).fill_nan(None)
    )
