-- How good the pool of $day is: coverage, sizes, and recall against the
-- redemptions of [$day, $label_end) by customers known before $day. The
-- 'no retrieval' reference counts a redemption as found when its offer was
-- eligible for the customer on $day (ranking everything eligible).
WITH cust AS (
    SELECT customer_id, home_store_id, segment FROM customer_features WHERE day = $day
),
pool AS (
    SELECT customer_id, offer_id FROM candidate_pool WHERE day = $day
),
per_customer AS (
    SELECT customer_id, count(*) AS n FROM pool GROUP BY ALL
),
labels AS (
    SELECT DISTINCT r.customer_id, r.offer_id, c.home_store_id, c.segment
    FROM redemptions r JOIN cust c ON c.customer_id = r.customer_id
    WHERE r.day >= $day AND r.day < $label_end
)
SELECT
    (SELECT count(*) FROM cust) AS customers,
    (SELECT count(*) FROM per_customer) AS customers_covered,
    (SELECT count(DISTINCT c.customer_id) FROM cust c
       JOIN eligible_offers e ON e.day = $day AND e.home_store_id = c.home_store_id AND e.segment = c.segment)
        AS customers_with_eligible_offers,
    (SELECT count(*) FROM pool) AS pairs,
    (SELECT avg(n) FROM per_customer) AS mean_candidates,
    (SELECT max(n) FROM per_customer) AS max_candidates,
    (SELECT count(*) FROM labels) AS redemptions,
    (SELECT count(*) FROM labels l SEMI JOIN pool p ON p.customer_id = l.customer_id AND p.offer_id = l.offer_id)
        AS redemptions_in_pool,
    (SELECT count(*) FROM labels l SEMI JOIN eligible_offers e
       ON e.day = $day AND e.home_store_id = l.home_store_id AND e.segment = l.segment AND e.offer_id = l.offer_id)
        AS redemptions_eligible
