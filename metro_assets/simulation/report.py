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
