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
regular_lines AS (  -- all order lines before the last requested day that no redemption created
    SELECT o.customer_id, o.day, i.is_promo
    FROM ord o JOIN order_items i ON i.order_id = o.order_id
    WHERE o.order_id NOT IN (SELECT order_id FROM redemptions)
),
history AS (  -- the whole history before D, not 90 days: a steadier read of promo sensitivity
    SELECT r.customer_id, r.day, count(*) AS lines, count(*) FILTER (WHERE l.is_promo) AS promo_lines
    FROM req r JOIN regular_lines l ON l.customer_id = r.customer_id AND l.day < r.day
    GROUP BY ALL
),
shown_before AS (
    SELECT r.customer_id, r.day, count(*) AS n
    FROM req r JOIN impressions x ON x.customer_id = r.customer_id AND x.day < r.day
    GROUP BY ALL
),
redeemed_before AS (
    SELECT r.customer_id, r.day, count(*) AS n
    FROM req r JOIN redemptions x ON x.customer_id = r.customer_id AND x.day < r.day
    GROUP BY ALL
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
       (r.day - c.join_date)::INTEGER AS days_since_join,
       h.promo_lines / nullif(h.lines, 0) AS promo_affinity_all,
       -- log-odds of a promo line, smoothed by half a line each way (0 without history)
       ln((coalesce(h.promo_lines, 0) + 0.5) / (coalesce(h.lines, 0) - coalesce(h.promo_lines, 0) + 0.5))
           AS promo_log_odds,
       -- offers redeemed per offer shown before D, smoothed toward 5% with 10 pseudo-impressions
       (coalesce(rb.n, 0) + 0.5) / (coalesce(sb.n, 0) + 10.0) AS redemption_rate
FROM req r
LEFT JOIN customers c ON c.customer_id = r.customer_id
LEFT JOIN last_order lo ON lo.customer_id = r.customer_id AND lo.day = r.day
LEFT JOIN orders_90 o ON o.customer_id = r.customer_id AND o.day = r.day
LEFT JOIN line_stats ls ON ls.customer_id = r.customer_id AND ls.day = r.day
LEFT JOIN category_stats cs ON cs.customer_id = r.customer_id AND cs.day = r.day
LEFT JOIN history h ON h.customer_id = r.customer_id AND h.day = r.day
LEFT JOIN shown_before sb ON sb.customer_id = r.customer_id AND sb.day = r.day
LEFT JOIN redeemed_before rb ON rb.customer_id = r.customer_id AND rb.day = r.day
