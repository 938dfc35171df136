-- Offer features as of the start of each requested day.
-- {requests}: a relation with (offer_id, day). Impressions and redemptions
-- count only when dated before the request's day. $prior_weight (m) is the
-- number of pseudo-impressions at the global rate that smooth the offer's rate.
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
       coalesce(rb.n, 0)::INTEGER AS redemptions_before
FROM depth d
JOIN global_rate g ON g.day = d.day
LEFT JOIN impressions_before ib ON ib.offer_id = d.offer_id AND ib.day = d.day
LEFT JOIN redemptions_before rb ON rb.offer_id = d.offer_id AND rb.day = d.day
