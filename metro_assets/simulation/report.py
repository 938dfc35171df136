"""Figures that show each simulated behaviour, computed from the warehouse.

`make demo` prints them and the README quotes them from a real run.

Examples
--------
>>> from metro_assets.warehouse import connect
>>> with connect(":memory:") as con:  # doctest: +SKIP
...     print(behaviour_table(con))
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

_LINES = """
    select o.customer_id, c.segment, o.order_id, o.order_timestamp, o.day, oi.is_promo, p.category, p.brand,
           o.order_id in (select order_id from redemptions) as from_offer
    from order_items oi join orders o using (order_id) join customers c using (customer_id)
    join products p using (product_id)
"""

BEHAVIOURS: list[tuple[str, str, str]] = [
    ("Segments 40/20/30/10", "customers per segment (%)",
     "select string_agg(segment || ' ' || round(100 * s, 1), ', ' order by segment) from "
     "(select segment, count(*) / sum(count(*)) over () s from customers group by segment)"),
    ("Basket size by segment", "lines per order",
     "select string_agg(segment || ' ' || round(b, 1), ', ' order by segment) from (select segment, avg(num_items) b "
     "from orders join customers using (customer_id) where order_id not in (select order_id from redemptions) "
     "group by segment)"),
    ("Visit frequency by segment", "orders per customer per 30 days",
     "select string_agg(segment || ' ' || round(f, 2), ', ' order by segment) from (select segment, "
     "count(o.order_id) * 30.0 / count(distinct c.customer_id) / (select date_diff('day', min(day), max(day)) + 1 from orders) f "
     "from customers c left join orders o using (customer_id) group by segment)"),
    ("Promo affinity by segment", "share of lines bought on promotion (%)",
     "select string_agg(segment || ' ' || round(100 * p, 1), ', ' order by segment) from (select segment, "
     "avg(is_promo::int) p from lines where not from_offer group by segment)"),
    ("Weekend peak", "Saturday orders / mean Monday-Thursday orders",
     "select round(avg(n) filter (where dow = 6) / avg(n) filter (where dow between 1 and 4), 2) from "
     "(select day, dayofweek(day) dow, count(*) n from orders group by day)"),
    ("Payday spike", "orders/day on the last 3 days + 1st of a month vs other days",
     "select round(avg(n) filter (where pay) / avg(n) filter (where not pay), 2) from (select day, count(*) n, "
     "day >= last_day(day) - 2 or day(day) = 1 as pay from orders group by day)"),
    ("Christmas run", "orders/day Dec 14-24 vs November; confectionery share Dec 14-24 vs November",
     "select round(avg(n) filter (where xmas) / avg(n) filter (where nov), 2) || 'x orders, ' || "
     "(select round(avg((category = 'confectionery')::int) filter (where month(day) = 12 and day(day) between 14 and 24) / "
     "avg((category = 'confectionery')::int) filter (where month(day) = 11), 2) from lines) || 'x confectionery' "
     "from (select day, count(*) n, month(day) = 12 and day(day) between 14 and 24 xmas, month(day) = 11 nov "
     "from orders group by day)"),
    ("Summer BBQ", "bbq_grill share of lines in August vs October",
     "select round(avg((category = 'bbq_grill')::int) filter (where month(day) = 8) / "
     "nullif(avg((category = 'bbq_grill')::int) filter (where month(day) = 10), 0), 2) || 'x' from lines"),
    ("Black Friday week", "orders/day and promo share in Black Friday week vs the week before",
     "select round(avg(n) filter (where bf) / avg(n) filter (where pre), 2) || 'x orders, promo share ' || "
     "round(100 * avg(p) filter (where bf), 1) || '% vs ' || round(100 * avg(p) filter (where pre), 1) || '%' from "
     "(select o.day, count(distinct o.order_id) n, avg(oi.is_promo::int) p, "
     "o.day between date '2025-11-28' and date '2025-12-04' bf, o.day between date '2025-11-21' and date '2025-11-27' pre "
     "from orders o join order_items oi using (order_id) group by o.day)"),
    ("Category affinity by segment", "baby share of family lines vs others; meat share of horeca vs others (%)",
     "select 'baby: family ' || round(100 * avg((category = 'baby')::int) filter (where segment = 'family'), 1) || "
     "' vs ' || round(100 * avg((category = 'baby')::int) filter (where segment <> 'family'), 1) || "
     "'; meat: horeca ' || round(100 * avg((category = 'meat')::int) filter (where segment = 'horeca'), 1) || "
     "' vs ' || round(100 * avg((category = 'meat')::int) filter (where segment <> 'horeca'), 1) from lines"),
    ("Brand loyalty", "customers whose favourite brand has >= 60% of their lines in their top category (%)",
     "select round(100 * avg((top_share >= 0.6)::int), 1) from (select customer_id, max(bn) / sum(bn) top_share from "
     "(select customer_id, category, brand, count(*) bn from lines where not from_offer group by all) "
     "where (customer_id, category) in (select customer_id, arg_max(category, n) from (select customer_id, category, "
     "count(*) n from lines group by all) group by customer_id) group by customer_id having sum(bn) >= 5)"),
    ("Promo-only and discount-blind customers", "customers (>= 10 lines) with promo share >= 70% / <= 3% (%)",
     "select round(100 * avg((p >= 0.7)::int), 1) || ' / ' || round(100 * avg((p <= 0.03)::int), 1) from "
     "(select customer_id, avg(is_promo::int) p from lines where not from_offer group by customer_id having count(*) >= 10)"),
    ("Rotating offers", "offers active per day (mean); percentage/fixed/bogo mix (%)",
     "select round(avg(n)) || ' active; ' || (select string_agg(discount_type || ' ' || round(100 * s, 0), ', ' "
     "order by discount_type) from (select discount_type, count(*) / sum(count(*)) over () s from offers group by 1)) "
     "from (select d.day, count(o.offer_id) n from (select distinct day from orders) d join offers o "
     "on d.day between o.start_date and o.end_date group by d.day)"),
    ("Scopes and caps", "store-scoped / segment-scoped / capped offers (%); capped offers that hit their cap",
     "select round(100 * avg((store_scope is not null)::int), 0) || ' / ' || round(100 * avg((segment_scope is not null)::int), 0) "
     "|| ' / ' || round(100 * avg((max_redemptions is not null)::int), 0) || '; ' || "
     "(select count(*) from (select offer_id from offers join redemptions using (offer_id) where max_redemptions is not null "
     "group by offer_id, max_redemptions having count(*) = max_redemptions)) || ' offers hit their cap' from offers"),
    ("Legacy targeting", "offers shown per reached customer-week",
     "select round(avg(n), 1) from (select customer_id, date_trunc('week', day), count(*) n from impressions group by all)"),
    ("Redemption funnel", "redemptions / impressions (%)",
     "select round(100 * (select count(*) from redemptions) / count(*), 2) from impressions"),
    ("Discount depth drives redemption", "redemption rate of offers >= 30% deep vs < 15% deep",
     "select round(100 * avg(r) filter (where depth >= 0.3), 2) || '% vs ' || round(100 * avg(r) filter (where depth < 0.15), 2) || '%' "
     "from (select i.impression_id, exists (select 1 from redemptions r where r.customer_id = i.customer_id and "
     "r.offer_id = i.offer_id)::int r, case o.discount_type when 'percentage' then o.discount_value / 100 "
     "when 'fixed_amount' then least(o.discount_value / p.base_price, 1) else o.discount_value / (1 + o.discount_value) end depth "
     "from impressions i join offers o using (offer_id) join products p using (product_id))"),
]


def behaviour_table(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per simulated behaviour: what it is, the measure, and its value."""
    con.execute(f"create or replace temp view lines as {_LINES}")
    values = [str(con.execute(sql).fetchall()[0][0]) for _, _, sql in BEHAVIOURS]
    return pl.DataFrame({"behaviour": [b[0] for b in BEHAVIOURS], "measure": [b[1] for b in BEHAVIOURS],
                         "value": values})


def table_summary(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> pl.DataFrame:
    """Rows and day range of each table."""
    return pl.concat(
        [con.sql(f"select '{t}' as table_name, count(*) as rows, min(day) as first_day, max(day) as last_day from {t}").pl()
         for t in tables]
    )


# ---- World v2 calibration: the real-panel facts, same definitions -------------------------------
# Each fact: (name, real panel, simulator v1 at default scale, the range the simulator must land within).
CALIBRATION: list[tuple[str, str, str, str]] = [
    ("trips per customer per week (mean)", "1.13", "0.27", "0.85-1.4"),
    ("lines per basket: mean / median / p99", "10.3 / 5 / 60", "6.3 / 6 / 19", "mean 8-13, p99 >= 35"),
    ("single-line baskets", "14%", "2.6% (+7.5% redemption-only orders)", "8-20%, redemptions inside trips"),
    ("repeat share (product), lines after day 56", "0.39", "0.10", "0.30-0.48"),
    ("repeat share (subcategory)", "0.81", "0.50", "0.70-0.90"),
    ("(customer, product) pairs bought on >= 3 days", "9.4%", "1.4%", "6-13%"),
    ("repurchase gaps of those pairs: median days; median CV", "24; 0.66", "36; 0.75", "16-32; <= 0.70"),
    ("distinct products per customer (median)", "152", "29", "100-200"),
    ("spend share of the top 20% of products", "0.78", "0.77", "0.72-0.84"),
    ("same-basket lift, top-10 pairs of the 200 best sellers: real / shuffled", "36.6 / 11.4", "9.1 / 8.1",
     "real >= 2x shuffled"),
    ("share of spend on discounted lines; discount / gross", "0.55; 0.16", "0.19; 0.037", "0.40-0.65; 0.10-0.20"),
    ("churn: active in the first quarter, no trip in the last", "0.089", "0.215", "0.05-0.13"),
    ("taste stability: category shares 1st vs 2nd half, corr own / other", "0.60 / 0.07", "0.47 / 0.00",
     "own 0.5-0.7"),
]


def _window_lines(con: duckdb.DuckDBPyConnection, days: int) -> None:
    con.execute(f"""
        create or replace temp table cal_lines as
        with bounds as (select min(day) as d0 from orders)
        select o.order_id, o.customer_id, o.day, date_diff('day', b.d0, o.day) as d, i.product_id, p.subcategory,
               p.category, i.quantity * i.unit_price as gross, i.discount_amount as discount
        from orders o join order_items i using (order_id) join products p using (product_id), bounds b
        where o.day < b.d0 + {days}
    """)


def calibration_facts(con: duckdb.DuckDBPyConnection, days: int = 180, seed: int = 0) -> dict[str, float]:
    """The issue's calibration facts, measured on the first ``days`` of the history in the warehouse."""
    _window_lines(con, days)
    q = lambda sql: con.execute(sql).fetchall()[0]  # noqa: E731
    f: dict[str, float] = {}
    n_days = q("select count(distinct day) from orders where day < (select min(day) + $d from orders)".replace(
        "$d", str(days)))[0]
    baskets = "(select order_id, customer_id, count(*) n from cal_lines group by all)"
    f["trips_per_week"], f["lines_mean"], f["lines_median"], f["lines_p99"], f["single_line"] = q(
        f"select count(*) / count(distinct customer_id) / ({n_days} / 7.0), avg(n), median(n), "
        f"quantile_cont(n, 0.99), avg((n = 1)::int) from {baskets}")
    for level, col in (("repeat_product", "product_id"), ("repeat_subcategory", "subcategory")):
        f[level] = q(f"""
            with first as (select customer_id, {col}, min(d) as d1 from cal_lines group by all)
            select avg((f.d1 < l.d)::int) from cal_lines l join first f using (customer_id, {col}) where l.d >= 56
        """)[0]
    con.execute("""create or replace temp table cal_pair_days as
                   select distinct customer_id, product_id, d from cal_lines""")
    f["pairs_3_days"] = q("""select avg((n >= 3)::int) from
                             (select customer_id, product_id, count(*) n from cal_pair_days group by all)""")[0]
    f["gap_median"], f["gap_cv_median"] = q("""
        with g as (select customer_id, product_id, d - lag(d) over (partition by customer_id, product_id order by d) gap
                   from cal_pair_days
                   where (customer_id, product_id) in (select customer_id, product_id from cal_pair_days
                                                       group by all having count(*) >= 3))
        select (select median(gap) from g),
               (select median(s / m) from (select stddev_pop(gap) s, avg(gap) m from g where gap is not null
                                           group by customer_id, product_id))
    """)
    f["distinct_products"] = q("select median(n) from (select customer_id, count(distinct product_id) n "
                               "from cal_lines group by 1)")[0]
    f["top20_spend"] = q("""
        with s as (select product_id, sum(gross) g from cal_lines group by 1),
             r as (select g, row_number() over (order by g desc) rn, count(*) over () n from s)
        select sum(g) filter (where rn <= 0.2 * n) / sum(g) from r""")[0]
    f["lift_real"], f["lift_shuffled"] = _lift(con, seed), _lift(con, seed, shuffled=True)
    f["discounted_spend"], f["discount_share"] = q(
        "select sum(gross) filter (where discount > 0) / sum(gross), sum(discount) / sum(gross) from cal_lines")
    f["churn"] = q(f"""
        with a as (select customer_id, max((d < {days} / 4)::int) first_q, max((d >= {days} - {days} / 4)::int) last_q
                   from cal_lines group by 1)
        select avg((last_q = 0)::int) from a where first_q = 1""")[0]
    f["taste_own"], f["taste_other"] = _taste_stability(con, days, seed)
    return f


def _lift(con: duckdb.DuckDBPyConnection, seed: int, shuffled: bool = False, top: int = 200,
          min_together: int = 5) -> float:
    """Mean same-basket lift of the 10 best pairs among the ``top`` best sellers (shuffled: products
    permuted across each customer's baskets, keeping basket sizes)."""
    source = "cal_lines"
    if shuffled:
        con.execute(f"""create or replace temp table cal_shuffled as
            with l as (select order_id, customer_id, row_number() over (partition by customer_id order by order_id,
                       product_id) k from cal_lines),
                 r as (select customer_id, product_id, hash(order_id, product_id, {seed}) h from cal_lines),
                 p as (select customer_id, product_id, row_number() over (partition by customer_id order by h) k
                       from r)
            select l.order_id, p.product_id from l join p using (customer_id, k)""".replace("{seed}", str(seed)))
        source = "cal_shuffled"
    return con.execute(f"""
        with best as (select product_id from cal_lines group by 1 order by count(*) desc, product_id limit {top}),
             b as (select distinct order_id, product_id from {source} where product_id in (select product_id from best)),
             n as (select count(distinct order_id)::double total from {source}),
             single as (select product_id, count(*) c from b group by 1),
             pair as (select x.product_id a, y.product_id b, count(*) c from b x join b y
                      on x.order_id = y.order_id and x.product_id < y.product_id group by all
                      having count(*) >= {min_together})
        select avg(lift) from (select pair.c * n.total / (sa.c * sb.c) lift from pair, n
                               join single sa on sa.product_id = pair.a join single sb on sb.product_id = pair.b
                               order by lift desc limit 10)
    """).fetchall()[0][0]


def _taste_stability(con: duckdb.DuckDBPyConnection, days: int, seed: int) -> tuple[float, float]:
    """Mean correlation of a customer's category shares, first vs second half: own and a random other's."""
    x = con.sql(f"""select customer_id, category, (d >= {days} / 2)::int half, count(*) n from cal_lines
                    group by all""").pl()
    wide = x.pivot(on="category", index=["customer_id", "half"], values="n").fill_null(0).sort("customer_id", "half")
    cats = [c for c in wide.columns if c not in ("customer_id", "half")]
    first = wide.filter(pl.col("half") == 0).drop("half")
    second = wide.filter(pl.col("half") == 1).drop("half")
    both = first.join(second, on="customer_id", suffix="_2")
    a = both.select(cats).to_numpy().astype(float)
    b = both.select([f"{c}_2" for c in cats]).to_numpy().astype(float)
    keep = (a.sum(1) >= 20) & (b.sum(1) >= 20)
    a, b = a[keep] / a[keep].sum(1, keepdims=True), b[keep] / b[keep].sum(1, keepdims=True)

    def corr(u, v):
        u = u - u.mean(1, keepdims=True)
        v = v - v.mean(1, keepdims=True)
        return float(np.mean((u * v).sum(1) / np.sqrt((u * u).sum(1) * (v * v).sum(1))))

    other = np.random.default_rng(seed).permutation(len(b))
    return corr(a, b), corr(a, b[other])


def calibration_table(con: duckdb.DuckDBPyConnection, days: int = 180) -> pl.DataFrame:
    """The calibration facts beside the real panel's, v1's and the target range."""
    f = calibration_facts(con, days)
    v2 = [
        f"{f['trips_per_week']:.2f}",
        f"{f['lines_mean']:.1f} / {f['lines_median']:.0f} / {f['lines_p99']:.0f}",
        f"{100 * f['single_line']:.1f}%",
        f"{f['repeat_product']:.2f}",
        f"{f['repeat_subcategory']:.2f}",
        f"{100 * f['pairs_3_days']:.1f}%",
        f"{f['gap_median']:.0f}; {f['gap_cv_median']:.2f}",
        f"{f['distinct_products']:.0f}",
        f"{f['top20_spend']:.2f}",
        f"{f['lift_real']:.1f} / {f['lift_shuffled']:.1f}",
        f"{f['discounted_spend']:.2f}; {f['discount_share']:.3f}",
        f"{f['churn']:.3f}",
        f"{f['taste_own']:.2f} / {f['taste_other']:.2f}",
    ]
    return pl.DataFrame({"fact": [c[0] for c in CALIBRATION], "real_panel": [c[1] for c in CALIBRATION],
                         "v1": [c[2] for c in CALIBRATION], "v2": v2, "must_land_within": [c[3] for c in CALIBRATION]})
