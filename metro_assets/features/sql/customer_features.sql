-- Customer features as of the start of each requested day.
-- {requests}: a relation with (customer_id, day). Only events dated before the
-- request's day are read; "90 d" windows are [day - 90, day).
-- Sums of doubles go through DECIMAL: a parallel float sum depends on the row
-- order, and features must not move in the last bit when unrelated rows change.
WITH req AS (
    SELECT DISTINCT customer_id, day FROM {requests}
),
bounds AS (
    SELECT min(day) - 90 AS lo, max(day) AS hi FROM req
),
ord AS (  -- the requested customers' orders, all history before the last requested day
    SELECT o.customer_id, o.order_id, o.day, o.total_amount, o.num_items
    FROM orders o
    WHERE o.customer_id IN (SELECT customer_id FROM req) AND o.day < (SELECT hi FROM bounds)
),
last_order AS (
    SELECT r.customer_id, r.day, max(o.day) AS last_day
    FROM req r JOIN ord o ON o.customer_id = r.customer_id AND o.day < r.day
    GROUP BY ALL
),
orders_90 AS (
    SELECT r.customer_id, r.day,
           count(*) AS frequency,
           sum(o.total_amount::DECIMAL(18, 4)) AS monetary,
           avg(o.num_items) AS avg_basket_size
    FROM req r JOIN ord o
      ON o.customer_id = r.customer_id AND o.day < r.day AND o.day >= r.day - 90
    GROUP BY ALL
),
lines_90 AS (
    SELECT r.customer_id, r.day, p.category, i.is_promo,
           i.discount_amount / nullif(i.quantity * i.unit_price, 0) AS depth_used
    FROM req r
    JOIN ord o ON o.customer_id = r.customer_id AND o.day < r.day AND o.day >= r.day - 90
    JOIN order_items i ON i.order_id = o.order_id
    JOIN products p ON p.product_id = i.product_id
),
line_stats AS (
    SELECT customer_id, day,
           count_if(is_promo) / count(*) AS promo_affinity,
           avg(least(greatest(depth_used, 0), 1)::DECIMAL(18, 15)) FILTER (WHERE is_promo)
               AS avg_discount_depth_used
    FROM lines_90 GROUP BY ALL
),
category_counts AS (
    SELECT customer_id, day, category, count(*) AS n FROM lines_90 GROUP BY customer_id, day, category
),
category_lines AS (
    SELECT customer_id, day, category, n,
           sum(n) OVER (PARTITION BY customer_id, day) AS total,
           row_number() OVER (PARTITION BY customer_id, day ORDER BY n DESC, category) AS rank
    FROM category_counts
),
category_stats AS (
    SELECT customer_id, day,
           greatest(-sum((n / total * ln(n / total))::DECIMAL(18, 15))::DOUBLE, 0.0) + 0.0 AS category_entropy,
           string_agg(category, ',' ORDER BY rank) FILTER (WHERE rank <= 3) AS top_3_categories
    FROM category_lines GROUP BY ALL
)
SELECT r.customer_id,
       r.day,
       c.segment,
       c.home_store_id,
       (r.day - lo.last_day)::DOUBLE AS recency_days,
       coalesce(o.frequency, 0)::INTEGER AS frequency,
       coalesce(o.monetary, 0.0)::DOUBLE AS monetary,
       ls.promo_affinity,
       o.avg_basket_size::DOUBLE AS avg_basket_size,
       cs.category_entropy,
       cs.top_3_categories,
       ls.avg_discount_depth_used::DOUBLE AS avg_discount_depth_used,
       (r.day - c.join_date)::INTEGER AS days_since_join
FROM req r
LEFT JOIN customers c ON c.customer_id = r.customer_id
LEFT JOIN last_order lo ON lo.customer_id = r.customer_id AND lo.day = r.day
LEFT JOIN orders_90 o ON o.customer_id = r.customer_id AND o.day = r.day
LEFT JOIN line_stats ls ON ls.customer_id = r.customer_id AND ls.day = r.day
LEFT JOIN category_stats cs ON cs.customer_id = r.customer_id AND cs.day = r.day
