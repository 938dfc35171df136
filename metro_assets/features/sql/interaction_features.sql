-- Customer x offer features as of the start of each requested day.
-- {requests}: a relation with (customer_id, offer_id, day). Only order lines
-- dated before the request's day are read; "90 d" windows are [day - 90, day).
-- {embedding_affinity}: a relation (customer_id, offer_id, day, embedding_affinity)
-- computed by metro_assets.embeddings.vectors.pair_affinity, point in time
-- (an empty relation when the feature is off: the column is NULL).
-- Product history counts days with any line of the offer's product (offer-made
-- purchases too: they stock the household up all the same); exposure counts
-- the customer's impressions in [day - 28, day): repeated offers tire.
WITH req AS (
    SELECT DISTINCT customer_id, offer_id, day FROM {requests}
),
customer_days AS (
    SELECT DISTINCT customer_id, day FROM req
),
offer_facts AS (
    SELECT o.offer_id, o.product_id, p.category, p.brand,
           least(greatest(CASE
               WHEN o.discount_value IS NULL OR o.discount_value < 0 THEN NULL
               WHEN lower(trim(o.discount_type)) = 'percentage' THEN o.discount_value / 100.0
               WHEN lower(trim(o.discount_type)) = 'fixed_amount'
                   THEN o.discount_value / nullif(p.base_price, 0)
               WHEN lower(trim(o.discount_type)) = 'bogo' THEN o.discount_value / (1.0 + o.discount_value)
           END, 0.0), 1.0) AS discount_depth
    FROM offers o LEFT JOIN products p ON p.product_id = o.product_id
    WHERE o.offer_id IN (SELECT offer_id FROM req)
),
lines AS (  -- the requested customers' order lines, all history before the last requested day
    SELECT o.customer_id, o.day, i.order_id, i.product_id, p.category, p.brand, i.is_promo,
           o.order_id NOT IN (SELECT order_id FROM redemptions) AS regular,
           least(greatest(i.discount_amount / nullif(i.quantity * i.unit_price, 0), 0), 1) AS depth_used
    FROM orders o
    JOIN order_items i ON i.order_id = o.order_id
    JOIN products p ON p.product_id = i.product_id
    WHERE o.customer_id IN (SELECT customer_id FROM customer_days)
      AND o.day < (SELECT max(day) FROM customer_days)
),
first_bought AS (  -- bought before D  <=>  first bought before D
    SELECT customer_id, product_id, min(day) AS first_day FROM lines GROUP BY ALL
),
category_history AS (
    SELECT cd.customer_id, cd.day, l.category,
           max(l.day) AS last_day,
           count(DISTINCT l.order_id) FILTER (WHERE l.day >= cd.day - 90) AS orders_90,
           count(*) FILTER (WHERE l.day >= cd.day - 90) AS lines_90
    FROM customer_days cd JOIN lines l ON l.customer_id = cd.customer_id AND l.day < cd.day
    GROUP BY ALL
),
brand_90 AS (
    SELECT cd.customer_id, cd.day, l.category, l.brand, count(*) AS lines_90
    FROM customer_days cd
    JOIN lines l ON l.customer_id = cd.customer_id AND l.day < cd.day AND l.day >= cd.day - 90
    GROUP BY ALL
),
category_all AS (  -- whole history before D, regular lines only (no offer-made orders)
    SELECT cd.customer_id, cd.day, l.category, count(*) AS lines, count(*) FILTER (WHERE l.is_promo) AS promo_lines,
           max(l.day) AS last_day
    FROM customer_days cd JOIN lines l ON l.customer_id = cd.customer_id AND l.day < cd.day AND l.regular
    GROUP BY ALL
),
customer_all AS (
    SELECT customer_id, day, sum(lines) AS lines, sum(promo_lines) AS promo_lines FROM category_all GROUP BY ALL
),
brand_all AS (
    SELECT cd.customer_id, cd.day, l.category, l.brand, count(*) AS lines
    FROM customer_days cd JOIN lines l ON l.customer_id = cd.customer_id AND l.day < cd.day AND l.regular
    GROUP BY ALL
),
product_days AS (  -- the days each requested customer bought each requested offer's product
    SELECT DISTINCT customer_id, product_id, day FROM lines
    WHERE product_id IN (SELECT product_id FROM offer_facts)
),
product_history AS (
    SELECT r.customer_id, r.offer_id, r.day, count(*) AS days, min(p.day) AS first_day, max(p.day) AS last_day
    FROM req r
    JOIN offer_facts f ON f.offer_id = r.offer_id
    JOIN product_days p ON p.customer_id = r.customer_id AND p.product_id = f.product_id AND p.day < r.day
    GROUP BY ALL
),
shown_28 AS (  -- the requested customers' impressions in the 28 days before each requested day, per offer
    SELECT cd.customer_id, cd.day, i.offer_id, count(*) AS n
    FROM customer_days cd
    JOIN impressions i ON i.customer_id = cd.customer_id AND i.day < cd.day AND i.day >= cd.day - 28
    GROUP BY ALL
),
shown_category_28 AS (
    SELECT s.customer_id, s.day, p.category, sum(s.n) AS n
    FROM shown_28 s JOIN offers o ON o.offer_id = s.offer_id JOIN products p ON p.product_id = o.product_id
    GROUP BY ALL
),
customer_90 AS (
    SELECT cd.customer_id, cd.day,
           count(DISTINCT l.order_id) AS orders_90,
           count_if(l.is_promo) / count(*) AS promo_affinity,
           -- through DECIMAL: a parallel float sum depends on the row order
           avg(l.depth_used::DECIMAL(18, 15)) FILTER (WHERE l.is_promo)::DOUBLE AS avg_discount_depth_used
    FROM customer_days cd
    JOIN lines l ON l.customer_id = cd.customer_id AND l.day < cd.day AND l.day >= cd.day - 90
    GROUP BY ALL
)
SELECT r.customer_id,
       r.offer_id,
       r.day,
       fb.first_day IS NOT NULL AND fb.first_day < r.day AS bought_product_before,
       (r.day - ch.last_day)::DOUBLE AS days_since_last_purchase_in_category,
       CASE WHEN c.orders_90 > 0 THEN coalesce(ch.orders_90, 0) / c.orders_90 END
           AS category_affinity_score,
       f.discount_depth - c.avg_discount_depth_used AS discount_depth_vs_usual,
       c.promo_affinity * f.discount_depth AS price_sensitivity_match,
       CASE WHEN ch.lines_90 > 0 THEN coalesce(b.lines_90, 0) / ch.lines_90 END AS brand_affinity,
       -- the category's share of all the customer's lines, smoothed toward 1/20 with 10 pseudo-lines
       (coalesce(ca.lines, 0) + 0.5) / (coalesce(cu.lines, 0) + 10.0) AS category_line_share,
       ln((coalesce(ca.lines, 0) + 0.5) / (coalesce(cu.lines, 0) + 10.0)) AS log_category_line_share,
       coalesce(ba.lines, 0) / nullif(ca.lines, 0) AS brand_line_share,
       (r.day - ca.last_day)::DOUBLE AS days_since_regular_purchase_in_category,
       -- discount depth x the customer's all-history promo share (customer_features.promo_affinity_all)
       f.discount_depth * (cu.promo_lines / nullif(cu.lines, 0)) AS depth_promo_match,
       ea.embedding_affinity,
       coalesce(ph.days, 0)::DOUBLE AS product_purchase_days,
       (r.day - ph.last_day)::DOUBLE AS days_since_product_purchase,
       CASE WHEN ph.days >= 2
            THEN (r.day - ph.last_day)::DOUBLE / ((ph.last_day - ph.first_day)::DOUBLE / (ph.days - 1)) END
           AS product_due_ratio,
       coalesce(so.n, 0)::DOUBLE AS offer_shown_28d,
       coalesce(sc.n, 0)::DOUBLE AS category_shown_28d
FROM req r
LEFT JOIN offer_facts f ON f.offer_id = r.offer_id
LEFT JOIN first_bought fb ON fb.customer_id = r.customer_id AND fb.product_id = f.product_id
LEFT JOIN category_history ch
       ON ch.customer_id = r.customer_id AND ch.day = r.day AND ch.category = f.category
LEFT JOIN brand_90 b
       ON b.customer_id = r.customer_id AND b.day = r.day AND b.category = f.category AND b.brand = f.brand
LEFT JOIN customer_90 c ON c.customer_id = r.customer_id AND c.day = r.day
LEFT JOIN category_all ca ON ca.customer_id = r.customer_id AND ca.day = r.day AND ca.category = f.category
LEFT JOIN customer_all cu ON cu.customer_id = r.customer_id AND cu.day = r.day
LEFT JOIN brand_all ba
       ON ba.customer_id = r.customer_id AND ba.day = r.day AND ba.category = f.category AND ba.brand = f.brand
LEFT JOIN product_history ph ON ph.customer_id = r.customer_id AND ph.offer_id = r.offer_id AND ph.day = r.day
LEFT JOIN shown_28 so ON so.customer_id = r.customer_id AND so.day = r.day AND so.offer_id = r.offer_id
LEFT JOIN shown_category_28 sc ON sc.customer_id = r.customer_id AND sc.day = r.day AND sc.category = f.category
LEFT JOIN {embedding_affinity} ea ON ea.customer_id = r.customer_id AND ea.offer_id = r.offer_id AND ea.day = r.day
