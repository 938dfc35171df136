"""The oracle over the warehouse: the true effect of showing any (customer, offer) pairs on a day.

:func:`true_probabilities` evaluates exactly what the simulator evaluates for an
impression (``world._impression_truth``), but from the warehouse tables, for
any pairs: hidden traits, tastes and consumption cycles come from the
``sim.*`` tables; the household stock of a regular product follows from the
customer's last purchase of it (``orders``/``order_items``: day and quantity)
and from the latest redemption of a substitute (same subcategory); fatigue
counts the customer's impressions of the offer and of its category in the
4 weeks before the day. Set-based queries gather the inputs; the NumPy
functions of :mod:`metro_assets.simulation.oracle` turn them into figures.

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

from metro_assets.simulation import calendar, oracle
from metro_assets.simulation.catalog import CATEGORY_INDEX, CATEGORY_NAMES
from metro_assets.simulation.world import FATIGUE_DAYS, TASTE_EPOCH, Shock, month_end, taste_weights

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
OUTPUTS = ("p_redeem", "p_base", "uplift", "spend_effect", "lost_spend", "margin_rate", "trip_margin_rate")


class OracleUnavailable(LookupError):
    """The warehouse holds no simulator truth (imported data): oracle metrics cannot be computed."""


def oracle_available(con: duckdb.DuckDBPyConnection) -> bool:
    """Does the warehouse hold the simulator's hidden traits?"""
    return bool(con.sql("SELECT count(*) > 0 FROM (SELECT 1 FROM sim.customer_traits LIMIT 1)").fetchall()[0][0])


def _pairs_sql(pairs: str, day_expr: str) -> str:
    return f"""
    CREATE OR REPLACE TEMP TABLE truth_req AS
    SELECT DISTINCT r.customer_id, r.offer_id, r.day, o.product_id, o.discount_type, o.discount_value,
           o.end_date, p.category, p.subcategory, p.brand, p.base_price, coalesce(p.margin, 0.0) AS margin_rate,
           p.shelf_life_days, pt.share_in_category, pt.share_in_brand
    FROM (SELECT DISTINCT customer_id, offer_id, {day_expr} AS day FROM {pairs}) r
    JOIN offers o ON o.offer_id = r.offer_id
    JOIN products p ON p.product_id = o.product_id
    LEFT JOIN sim.product_traits pt ON pt.product_id = o.product_id
    """


_INPUTS = f"""
WITH bought AS (  -- each requested customer's purchase days (and quantities) of the offers' products
    SELECT o.customer_id, i.product_id, i.day, sum(i.quantity)::DOUBLE AS quantity
    FROM order_items i JOIN orders o ON o.order_id = i.order_id
    WHERE i.product_id IN (SELECT DISTINCT product_id FROM truth_req)
      AND o.customer_id IN (SELECT DISTINCT customer_id FROM truth_req)
      AND i.day < (SELECT max(day) FROM truth_req)
    GROUP BY ALL
),
last_buy AS (
    SELECT r.customer_id, r.offer_id, r.day, b.day AS last_day, b.quantity
    FROM truth_req r ASOF JOIN bought b
      ON b.customer_id = r.customer_id AND b.product_id = r.product_id AND r.day > b.day
),
substitute AS (  -- the latest redemption of another product of the same subcategory
    SELECT r.customer_id, r.offer_id, r.day, max(x.day) AS sub_day
    FROM truth_req r
    JOIN (SELECT d.customer_id, d.day, p.subcategory, p.product_id FROM redemptions d
          JOIN offers o ON o.offer_id = d.offer_id JOIN products p ON p.product_id = o.product_id) x
      ON x.customer_id = r.customer_id AND x.subcategory = r.subcategory AND x.product_id <> r.product_id
     AND x.day < r.day
    GROUP BY ALL
),
fatigue AS (
    SELECT r.customer_id, r.offer_id, r.day,
           count(*) FILTER (WHERE i.offer_id = r.offer_id) AS fatigue_offer, count(*) AS fatigue_category
    FROM truth_req r
    JOIN impressions i ON i.customer_id = r.customer_id AND i.day < r.day
     AND i.day >= r.day - INTERVAL {FATIGUE_DAYS} DAY
    JOIN offers o ON o.offer_id = i.offer_id JOIN products p ON p.product_id = o.product_id
    WHERE p.category = r.category
    GROUP BY ALL
)
SELECT r.*, c.join_date, t.visit_rate, t.basket_mean, t.topup_share, t.promo_sensitivity, t.brand_loyalty,
       t.response_type, t.response_shift, t.depth_threshold, t.extra_units, t.trip_spend, t.shock_key,
       t.churn_date, cct.favourite_brand, cp.weight, cp.cycle_days, cp.first_due,
       lb.last_day, lb.quantity, s.sub_day,
       coalesce(f.fatigue_offer, 0) AS fatigue_offer, coalesce(f.fatigue_category, 0) AS fatigue_category
FROM truth_req r
LEFT JOIN customers c ON c.customer_id = r.customer_id
LEFT JOIN sim.customer_traits t ON t.customer_id = r.customer_id
LEFT JOIN sim.customer_category_traits cct ON cct.customer_id = r.customer_id AND cct.category = r.category
LEFT JOIN sim.customer_products cp ON cp.customer_id = r.customer_id AND cp.product_id = r.product_id
LEFT JOIN last_buy lb ON lb.customer_id = r.customer_id AND lb.offer_id = r.offer_id AND lb.day = r.day
LEFT JOIN substitute s ON s.customer_id = r.customer_id AND s.offer_id = r.offer_id AND s.day = r.day
LEFT JOIN fatigue f ON f.customer_id = r.customer_id AND f.offer_id = r.offer_id AND f.day = r.day
ORDER BY r.customer_id, r.offer_id, r.day
"""

_TASTES = """
SELECT DISTINCT r.customer_id, r.day, cct.category, cct.preference, cct.drift, cct.phase,
       t.life_event_date, t.life_event_category, t.life_event_factor
FROM (SELECT DISTINCT customer_id, day FROM truth_req) r
JOIN sim.customer_category_traits cct ON cct.customer_id = r.customer_id
JOIN sim.customer_traits t ON t.customer_id = r.customer_id
"""

_ANCHORS = """
SELECT r.customer_id, r.offer_id, r.day, pa.category, pt.share_in_category, pt.share_in_brand,
       coalesce(cp.weight, 0.0) AS weight, coalesce(cct.favourite_brand = pa.brand, false) AS brand_match,
       t.brand_loyalty
FROM truth_req r
JOIN sim.product_traits pt ON pt.partner_id = r.product_id
JOIN products pa ON pa.product_id = pt.product_id
LEFT JOIN sim.customer_products cp ON cp.customer_id = r.customer_id AND cp.product_id = pt.product_id
LEFT JOIN sim.customer_category_traits cct ON cct.customer_id = r.customer_id AND cct.category = pa.category
LEFT JOIN sim.customer_traits t ON t.customer_id = r.customer_id
"""


def _days_of(x: pl.Series) -> np.ndarray:
    return x.to_numpy().astype("datetime64[D]")


def _rel(later: pl.Series, day: np.ndarray) -> np.ndarray:
    """Days from ``day`` to ``later`` (NaN where null)."""
    d = later.to_numpy().astype("datetime64[D]")
    return np.where(np.isnat(d), np.nan, (d - day).astype(float))


def _inputs(con: duckdb.DuckDBPyConnection, shock: Shock | None) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """The oracle's inputs of every pair in ``truth_req``."""
    x = con.sql(_INPUTS).pl()
    n, w = x.height, oracle.WEEK
    day = _days_of(x["day"])
    # calendar per distinct day, then per pair
    udays, day_ix = np.unique(day, return_inverse=True)
    window_days = udays[:, None] + np.arange(w)[None, :]
    flat = window_days.ravel()
    visits = calendar.visit_multiplier(flat).reshape(len(udays), w)
    cats = calendar.category_multiplier(flat).reshape(len(udays), w, len(CATEGORY_NAMES))
    s_visits = np.ones_like(visits)
    s_basket = np.ones_like(visits)
    s_red = np.zeros(len(udays))
    if shock is not None:
        on = (flat >= np.datetime64(shock.start, "D")) & (flat < np.datetime64(shock.end, "D"))
        s_visits = np.where(on, shock.visits, 1.0).reshape(len(udays), w)
        s_basket = np.where(on, shock.basket, 1.0).reshape(len(udays), w)
        s_red = np.where((udays >= np.datetime64(shock.start, "D")) & (udays < np.datetime64(shock.end, "D")),
                         shock.redemption, 0.0)
    # visits: active between joining and churning
    f = lambda c: x[c].cast(pl.Float64).fill_null(np.nan).to_numpy()  # noqa: E731
    kk = np.arange(w)[None, :]
    join_rel, churn_rel = _rel(x["join_date"], day), _rel(x["churn_date"], day)
    active = (np.nan_to_num(join_rel, nan=np.inf)[:, None] <= kk) & (kk < np.nan_to_num(churn_rel, nan=-np.inf)[:, None])
    pv = np.where(active, 1.0 - np.exp(-f("visit_rate")[:, None] * visits[day_ix] * s_visits[day_ix]), 0.0)
    # category tastes on the day (drift, life events), per (customer, day)
    t = con.sql(_TASTES).pl().with_columns(k=pl.col("category").replace_strict(CATEGORY_INDEX, default=-1))
    t = t.filter(pl.col("k") >= 0).sort("customer_id", "day", "k")
    cd = t.select("customer_id", "day").unique(maintain_order=True)
    k = len(CATEGORY_NAMES)
    shape = (cd.height, k)
    mat = {c: np.zeros(shape) for c in ("preference", "drift", "phase")}
    row = np.repeat(np.arange(cd.height), t.group_by(["customer_id", "day"], maintain_order=True).len()["len"])
    for c in mat:
        mat[c][row, t["k"].to_numpy()] = t[c].to_numpy()
    first = t.unique(["customer_id", "day"], keep="first", maintain_order=True)
    cd_day = _days_of(cd["day"])
    life_day = _days_of(first["life_event_date"])
    life_cat = first["life_event_category"].replace_strict(CATEGORY_INDEX, default=-1).to_numpy()
    weights = taste_weights(mat["preference"], mat["drift"], mat["phase"], (cd_day - TASTE_EPOCH).astype(float),
                            life_cat, first["life_event_factor"].fill_null(1.0).to_numpy(),
                            ~np.isnat(life_day) & (life_day <= cd_day))
    cd_day_ix = np.searchsorted(udays, cd_day)
    z = np.einsum("ck,cwk->cw", weights, cats[cd_day_ix])  # (customer-days, 7)
    cd_key = cd.with_columns(i=pl.int_range(pl.len()))
    pair_cd = x.select("customer_id", "day").join(cd_key, on=["customer_id", "day"], how="left")["i"]
    has_taste = pair_cd.is_not_null().to_numpy()
    ci = pair_cd.fill_null(0).to_numpy()
    category = x["category"].replace_strict(CATEGORY_INDEX, default=0).to_numpy()

    def pi(rows: np.ndarray, cat_k: np.ndarray, days: np.ndarray) -> np.ndarray:
        return weights[rows, cat_k][:, None] * cats[days, :, cat_k] / z[rows]

    own = np.nan_to_num(f("weight"))
    match = (x["favourite_brand"] == x["brand"]).fill_null(False).to_numpy()
    share = np.nan_to_num(oracle.popular_share(match, f("brand_loyalty"), f("share_in_category"), f("share_in_brand")))
    line = pi(ci, category, day_ix) * ((1 - oracle.NOVELTY) * own + oracle.NOVELTY * share)[:, None]
    a = con.sql(_ANCHORS).pl()
    if a.height:
        keys = x.select("customer_id", "offer_id", "day").with_columns(i=pl.int_range(pl.len()))
        a = a.join(keys, on=["customer_id", "offer_id", "day"])
        ai = a["i"].to_numpy()
        acat = a["category"].replace_strict(CATEGORY_INDEX, default=0).to_numpy()
        a_line = pi(ci[ai], acat, day_ix[ai]) * (
            (1 - oracle.NOVELTY) * a["weight"].to_numpy() + oracle.NOVELTY * np.nan_to_num(oracle.popular_share(
                a["brand_match"].to_numpy(), a["brand_loyalty"].cast(pl.Float64).fill_null(0.0).to_numpy(),
                a["share_in_category"].to_numpy(), a["share_in_brand"].to_numpy())))[:, None]
        line += oracle.COMPLEMENT * np.vstack([np.bincount(ai, weights=a_line[:, j], minlength=n)
                                               for j in range(w)]).T
    # household stock of a regular product: last purchase (and quantity), a substitute's redemption
    cycle = f("cycle_days")
    last_rel, sub_rel, first_rel = _rel(x["last_day"], day), _rel(x["sub_day"], day), _rel(x["first_due"], day)
    eq = 1.0 + f("extra_units")
    shelf = f("shelf_life_days")
    from_buy = last_rel + np.minimum(cycle * f("quantity") / eq, np.maximum(cycle, shelf))
    due = np.where(np.isnan(last_rel), first_rel, from_buy)
    sub_counts = ~np.isnan(sub_rel) & (np.isnan(last_rel) | (sub_rel >= np.nan_to_num(last_rel, nan=-np.inf)))
    due = np.where(sub_counts, np.maximum(due, sub_rel + cycle), due)
    due = np.where(np.isnan(cycle), np.nan, due)
    depth = oracle.discount_depth(x["discount_type"].to_numpy(), f("discount_value"), f("base_price"))
    kind = x["discount_type"].to_numpy().astype(str)
    inputs = {
        "pv": np.where(has_taste[:, None], pv, 0.0),
        "due_rel": due,
        "line_prob": np.where(has_taste[:, None], line, 0.0),
        "topup": np.nan_to_num(f("topup_share")),
        "lines": f("basket_mean")[:, None] * s_basket[day_ix],
        "window": np.minimum(w, _rel(x["end_date"], day) + 1).astype(float),
        "depth": depth,
        "depth_threshold": f("depth_threshold"),
        "promo_sensitivity": f("promo_sensitivity"),
        "response_shift": f("response_shift"),
        "response_type": x["response_type"].fill_null("").to_numpy(),
        "brand_match": match,
        "brand_loyalty": f("brand_loyalty"),
        "month_end": month_end(day),
        "fatigue_offer": f("fatigue_offer"),
        "fatigue_category": f("fatigue_category"),
        "shock": oracle.daily_shock(x["shock_key"].fill_null(0).to_numpy(),
                                    (day - TASTE_EPOCH).astype(np.int64)) + s_red[day_ix],
        "trip_spend": f("trip_spend"),
        "base_price": f("base_price"),
        "units": np.where(kind == "bogo", 1.0 + f("discount_value"), 1.0),
    }
    return x, inputs


def true_probabilities(con: duckdb.DuckDBPyConnection, pairs: str, day: date | None = None,
                       shock: Shock | None = None) -> pl.DataFrame:
    """The simulator's truth for each (customer, offer) pair as of the start of a day.

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
        The scenario the raw data was simulated with.

    Returns
    -------
    polars.DataFrame
        ``customer_id``, ``offer_id`` (``day`` too when ``day`` is None), and
        for the offer shown at position 1 (averaged over channels):
        ``p_redeem`` (a redemption within 7 days, inside the offer's dates),
        ``p_base`` (the customer buys the product within 7 days if NOT
        shown), ``uplift`` (the causal change in the chance of buying the
        product within 7 days; negative for sleeping dogs), ``spend_effect``
        (expected change of the customer's 7-day gross spend on the product),
        ``margin_rate`` (the product's margin), and the customer-level
        figures of a sleeping dog: ``lost_spend`` (the gross spend of the
        week's trips it skips once deterred; 0 for other customers) and
        ``trip_margin_rate`` (the margin rate of that spend: the catalogue's
        mean). At position r every per-offer figure is
        ``oracle.position_attention(r)`` times this; ``lost_spend`` is charged
        once per customer's list, times ``oracle.notice_any`` of its
        positions. One row per distinct pair; pairs whose customer has no
        truth rows get zeros.

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
    con.execute(_pairs_sql(pairs, day_expr), params)
    try:
        keys = ["customer_id", "offer_id"] + (["day"] if day is None else [])
        if con.sql("SELECT count(*) FROM truth_req").fetchall()[0][0] == 0:
            schema = {"customer_id": pl.Int64, "offer_id": pl.Int64, "day": pl.Date,
                      **{c: pl.Float64 for c in OUTPUTS}}
            return pl.DataFrame(schema={c: schema[c] for c in (*keys, *OUTPUTS)})
        x, inputs = _inputs(con, shock)
        out = oracle.evaluate(inputs)
        trip_margin = con.sql("SELECT coalesce(avg(coalesce(margin, 0.0)), 0.0) FROM products").fetchall()[0][0]
        return x.select(keys).with_columns(
            **{c: pl.Series(np.nan_to_num(out[c]))
               for c in ("p_redeem", "p_base", "uplift", "spend_effect", "lost_spend")},
            margin_rate=x["margin_rate"],
            trip_margin_rate=pl.lit(float(trip_margin), dtype=pl.Float64),
        ).select(*keys, *OUTPUTS)
    finally:
        con.execute("DROP TABLE IF EXISTS truth_req")
