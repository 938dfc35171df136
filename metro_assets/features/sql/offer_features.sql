-- Offer features as of the start of each requested day.
-- {requests}: a relation with (offer_id, day). Impressions and redemptions
-- count only when dated before the request's day. $prior_weight (m) is the
-- number of pseudo-impressions at the global rate that smooth the offer's rate.
-- Product popularity reads order lines in [day - 90, day): how often shoppers
-- pick the product within its category (and brand), whether or not on offer.
WITH req AS (
    SELECT DISTINCT offer_id, day FROM {requests}
),
req_days AS (
    SELECT DISTINCT day FROM req
),
shown AS (
    SELECT offer_id, day, count(*) AS n FROM impressions
    WHERE offer_id IN (SELECT offer_id FROM req) AND day < (SELECT max(day) FROM req)
    GROUP BY ALL
),
redeemed AS (
    SELECT offer_id, day, count(*) AS n FROM redemptions
    WHERE offer_id IN (SELECT offer_id FROM req) AND day < (SELECT max(day) FROM req)
    GROUP BY ALL
),
impressions_before AS (
    SELECT r.offer_id, r.day, sum(s.n) AS n
    FROM req r JOIN shown s ON s.offer_id = r.offer_id AND s.day < r.day GROUP BY ALL
),
redemptions_before AS (
    SELECT r.offer_id, r.day, sum(s.n) AS n
    FROM req r JOIN redeemed s ON s.offer_id = r.offer_id AND s.day < r.day GROUP BY ALL
),
global_rate AS (  -- every offer's redemptions per impression before the day (0 without impressions)
    SELECT d.day,
           coalesce((SELECT count(*) FROM redemptions x WHERE x.day < d.day)
                    / nullif((SELECT count(*) FROM impressions x WHERE x.day < d.day), 0), 0.0) AS rate
    FROM req_days d
),
depth AS (
    SELECT r.offer_id, r.day, o.product_id, p.category, p.brand, o.discount_type, o.end_date,
           p.base_price, p.margin,
           CASE
               WHEN o.discount_value IS NULL OR o.discount_value < 0 THEN NULL
               WHEN lower(trim(o.discount_type)) = 'percentage' THEN o.discount_value / 100.0
               WHEN lower(trim(o.discount_type)) = 'fixed_amount'
                   THEN o.discount_value / nullif(p.base_price, 0)
               WHEN lower(trim(o.discount_type)) = 'bogo' THEN o.discount_value / (1.0 + o.discount_value)
           END AS raw_depth
    FROM req r
    JOIN offers o ON o.offer_id = r.offer_id
    LEFT JOIN products p ON p.product_id = o.product_id
),
brand_products AS (  -- products in the catalogue before each day, per category and brand: the smoothing
    SELECT d.day, p.category, p.brand, count(*) AS n
    FROM req_days d JOIN products p ON p.day < d.day
    WHERE p.category IN (SELECT category FROM depth)
    GROUP BY ALL
),
category_products AS (  -- per category: joined on the category alone (the offer's brand may be new on D)
    SELECT day, category, sum(n) AS n FROM brand_products GROUP BY ALL
),
daily_lines AS (  -- lines per product and day in the requested categories, over the window the requests need
    SELECT i.product_id, p.category, p.brand, i.day, count(*) AS n
    FROM order_items i JOIN products p ON p.product_id = i.product_id
    WHERE p.category IN (SELECT category FROM depth)
      AND i.day >= (SELECT min(day) FROM req) - 90 AND i.day < (SELECT max(day) FROM req)
    GROUP BY ALL
),
window_lines AS (  -- per request day: lines per product in [day - 90, day)
    SELECT d.day, l.product_id, l.category, l.brand, sum(l.n) AS n
    FROM req_days d JOIN daily_lines l ON l.day < d.day AND l.day >= d.day - 90
    GROUP BY ALL
),
category_totals AS (  -- the denominators, also for a product nobody bought
    SELECT day, category, sum(n) AS n FROM window_lines GROUP BY ALL
),
brand_totals AS (
    SELECT day, category, brand, sum(n) AS n FROM window_lines GROUP BY ALL
)
SELECT d.offer_id,
       d.day,
       d.product_id,
       d.category,
       d.brand,
       d.discount_type,
       -- greatest/least skip NULLs: an unknown depth must stay unknown, not become 0
       CASE WHEN d.raw_depth IS NOT NULL THEN least(greatest(d.raw_depth, 0.0), 1.0) END AS discount_depth,
       CASE WHEN d.raw_depth IS NOT NULL
            THEN d.base_price * d.margin * least(greatest(d.raw_depth, 0.0), 1.0) END AS margin_impact,
       (d.end_date - d.day)::INTEGER AS days_until_expiry,
       (coalesce(rb.n, 0) + $prior_weight * g.rate) / (coalesce(ib.n, 0) + $prior_weight)
           AS historical_redemption_rate,
       coalesce(ib.n, 0)::INTEGER AS impressions_before,
       coalesce(rb.n, 0)::INTEGER AS redemptions_before,
       -- add-one smoothing over the products known before D (+ 1: the offer's own may be new on D)
       CASE WHEN d.category IS NOT NULL
            THEN (coalesce(pop.n, 0) + 1.0) / (coalesce(ct.n, 0) + coalesce(cp.n, 0) + 1.0)
       END AS product_share_in_category,
       CASE WHEN d.category IS NOT NULL
            THEN (coalesce(pop.n, 0) + 1.0) / (coalesce(bt.n, 0) + coalesce(bp.n, 0) + 1.0)
       END AS product_share_in_brand
FROM depth d
JOIN global_rate g ON g.day = d.day
LEFT JOIN window_lines pop ON pop.day = d.day AND pop.product_id = d.product_id
LEFT JOIN category_totals ct ON ct.day = d.day AND ct.category = d.category
LEFT JOIN brand_totals bt ON bt.day = d.day AND bt.category = d.category AND bt.brand IS NOT DISTINCT FROM d.brand
LEFT JOIN category_products cp ON cp.day = d.day AND cp.category = d.category
LEFT JOIN brand_products bp
       ON bp.day = d.day AND bp.category = d.category AND bp.brand IS NOT DISTINCT FROM d.brand
LEFT JOIN impressions_before ib ON ib.offer_id = d.offer_id AND ib.day = d.day
LEFT JOIN redemptions_before rb ON rb.offer_id = d.offer_id AND rb.day = d.day
