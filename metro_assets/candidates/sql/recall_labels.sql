-- What the pool of $day should contain, from the week after it ([$day, $label_end)),
-- for the customers of $day's customer_features:
--   kind 'redemption': each (customer, offer) redeemed in the window;
--   kind 'purchase':   each (customer, offer eligible for them on $day) whose product they bought in the window.
WITH cust AS (
    SELECT customer_id, home_store_id, segment FROM customer_features WHERE day = $day
),
bought AS (
    SELECT DISTINCT o.customer_id, i.product_id
    FROM orders o JOIN order_items i ON i.order_id = o.order_id
    WHERE o.day >= $day AND o.day < $label_end
      AND i.product_id IN (SELECT product_id FROM eligible_offers WHERE day = $day)
)
SELECT DISTINCT 'redemption' AS kind, r.customer_id, r.offer_id
FROM redemptions r JOIN cust c ON c.customer_id = r.customer_id
WHERE r.day >= $day AND r.day < $label_end
UNION ALL
SELECT DISTINCT 'purchase', c.customer_id, e.offer_id
FROM cust c
JOIN eligible_offers e ON e.day = $day AND e.home_store_id = c.home_store_id AND e.segment = c.segment
JOIN bought b ON b.customer_id = c.customer_id AND b.product_id = e.product_id
