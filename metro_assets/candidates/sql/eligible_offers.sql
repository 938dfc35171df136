-- The offers each (home store, segment) group may receive on each day of
-- [$start, $end): active on the day, published before it, the store and the
-- segment in scope, the redemption cap not reached before the day.
-- Eligibility depends on the customer only through (home_store_id, segment),
-- so it is computed per group (a few hundred) rather than per customer.
WITH groups AS (
    SELECT DISTINCT day, home_store_id, segment
    FROM customer_features WHERE day >= $start AND day < $end
),
live AS (
    SELECT f.day, f.offer_id, f.product_id, f.category, f.brand, f.discount_depth,
           o.store_scope, o.segment_scope, p.base_price * p.margin AS unit_margin
    FROM offer_features f
    JOIN offers o ON o.offer_id = f.offer_id
    LEFT JOIN products p ON p.product_id = f.product_id
    WHERE f.day >= $start AND f.day < $end
      AND o.start_date <= f.day AND f.day <= o.end_date AND o.day < f.day
      AND (o.max_redemptions IS NULL OR f.redemptions_before < o.max_redemptions)
)
SELECT g.day, g.home_store_id, g.segment, l.offer_id, l.product_id, l.category, l.brand,
       l.discount_depth, l.unit_margin
FROM groups g JOIN live l ON l.day = g.day
WHERE {store_ok} AND {segment_ok}
