-- Candidate retrieval for each customer of customer_features on each day of
-- [$start, $end), from the temp tables eligible_offers (see eligible_offers.sql)
-- and embedding_neighbours (the FAISS search, embeddings/retrieval.py).
-- One row per (customer, offer, strategy) with the offer's rank in that
-- strategy, down to its $<strategy>_depth (the strategy's quota when only the
-- pool is built; deeper when retrieval_summary needs what the others would put
-- in a left-out strategy's slots).
-- Strategies (codes; the pool's priority order is in candidate_pool.sql):
--   customers with an order before D:  1 category_affinity  2 segment_popularity
--                                      3 repeat_purchase    4 high_margin   8 embedding
--   customers without (cold start):    5 store_popularity   6 segment_default  7 essentials
-- Every strategy reads only events dated before D (90-day windows: [D - 90, D)).
WITH cust AS (
    SELECT customer_id, day, segment, home_store_id, recency_days IS NULL AS cold
    FROM customer_features WHERE day >= $start AND day < $end
),
days AS (
    SELECT DISTINCT day FROM cust
),
lines_90 AS (  -- every order line of the 90 days before each day
    SELECT d.day, o.customer_id, o.store_id, i.product_id, p.category
    FROM days d
    JOIN orders o ON o.day < d.day AND o.day >= d.day - 90
    JOIN order_items i ON i.order_id = o.order_id
    JOIN products p ON p.product_id = i.product_id
),
customer_category AS (
    SELECT day, customer_id, category, count(*) AS n FROM lines_90 GROUP BY ALL
),
segment_product AS (
    SELECT l.day, c.segment, l.product_id, count(*) AS n
    FROM lines_90 l JOIN customers c ON c.customer_id = l.customer_id GROUP BY ALL
),
segment_category AS (
    SELECT l.day, c.segment, l.category, count(*) AS n
    FROM lines_90 l JOIN customers c ON c.customer_id = l.customer_id GROUP BY ALL
),
store_product AS (
    SELECT day, store_id, product_id, count(*) AS n FROM lines_90 GROUP BY ALL
),
penetration AS (  -- how many customers bought in the category: the "essentials"
    SELECT day, category, count(DISTINCT customer_id) AS n FROM lines_90 GROUP BY ALL
),
bought AS (  -- products on offer the customer bought before the day (whole history)
    SELECT d.day, o.customer_id, i.product_id, count(*) AS n, max(o.day) AS last_day
    FROM days d
    JOIN orders o ON o.day < d.day
    JOIN order_items i ON i.order_id = o.order_id
    WHERE i.product_id IN (SELECT product_id FROM eligible_offers)
    GROUP BY ALL
),
group_ranked AS (  -- strategies that depend on the customer only through their group
    SELECT e.day, e.home_store_id, e.segment, e.offer_id,
           coalesce(sp.n, 0) AS segment_score,
           row_number() OVER (g ORDER BY coalesce(sp.n, 0) DESC, e.discount_depth DESC NULLS LAST, e.offer_id)
               AS segment_rank,
           row_number() OVER (g ORDER BY e.unit_margin DESC NULLS LAST, e.discount_depth DESC NULLS LAST, e.offer_id)
               AS margin_rank,
           coalesce(st.n, 0) AS store_score,
           row_number() OVER (g ORDER BY coalesce(st.n, 0) DESC, e.discount_depth DESC NULLS LAST, e.offer_id)
               AS store_rank,
           coalesce(sc.n, 0) AS default_score,
           row_number() OVER (g ORDER BY coalesce(sc.n, 0) DESC, e.discount_depth DESC NULLS LAST, e.offer_id)
               AS default_rank,
           row_number() OVER (g ORDER BY coalesce(pe.n, 0) DESC, e.discount_depth DESC NULLS LAST, e.offer_id)
               AS essentials_rank
    FROM eligible_offers e
    LEFT JOIN segment_product sp ON sp.day = e.day AND sp.segment = e.segment AND sp.product_id = e.product_id
    LEFT JOIN store_product st ON st.day = e.day AND st.store_id = e.home_store_id AND st.product_id = e.product_id
    LEFT JOIN segment_category sc ON sc.day = e.day AND sc.segment = e.segment AND sc.category = e.category
    LEFT JOIN penetration pe ON pe.day = e.day AND pe.category = e.category
    WINDOW g AS (PARTITION BY e.day, e.home_store_id, e.segment)
),
category_affinity AS (
    SELECT c.customer_id, c.day, e.offer_id,
           row_number() OVER (PARTITION BY c.customer_id, c.day
                              ORDER BY cc.n DESC, e.discount_depth DESC NULLS LAST, e.offer_id) AS rank
    FROM cust c
    JOIN customer_category cc ON cc.customer_id = c.customer_id AND cc.day = c.day
    JOIN eligible_offers e
      ON e.day = c.day AND e.home_store_id = c.home_store_id AND e.segment = c.segment AND e.category = cc.category
    WHERE NOT c.cold
    QUALIFY rank <= $category_depth
),
repeat_purchase AS (
    SELECT c.customer_id, c.day, e.offer_id,
           row_number() OVER (PARTITION BY c.customer_id, c.day ORDER BY b.n DESC, b.last_day DESC, e.offer_id)
               AS rank
    FROM cust c
    JOIN bought b ON b.customer_id = c.customer_id AND b.day = c.day
    JOIN eligible_offers e
      ON e.day = c.day AND e.home_store_id = c.home_store_id AND e.segment = c.segment AND e.product_id = b.product_id
    WHERE NOT c.cold
    QUALIFY rank <= $repeat_depth
),
embedding AS (  -- the customer's nearest products (FAISS), their eligible offers, nearest first
    SELECT c.customer_id, c.day, e.offer_id,
           row_number() OVER (PARTITION BY c.customer_id, c.day ORDER BY n.similarity_rank, e.offer_id) AS rank
    FROM cust c
    JOIN embedding_neighbours n ON n.customer_id = c.customer_id AND n.day = c.day
    JOIN eligible_offers e
      ON e.day = c.day AND e.home_store_id = c.home_store_id AND e.segment = c.segment AND e.product_id = n.product_id
    WHERE NOT c.cold
    QUALIFY rank <= $embedding_depth
),
group_picks AS (  -- the strategies that rank offers per (store, segment) group
    SELECT c.customer_id, c.day, g.offer_id, s.code, s.rank
    FROM cust c
    JOIN group_ranked g ON g.day = c.day AND g.home_store_id = c.home_store_id AND g.segment = c.segment,
    LATERAL (VALUES
        (2, CASE WHEN NOT c.cold AND g.segment_score > 0 AND g.segment_rank <= $segment_depth THEN g.segment_rank END),
        (4, CASE WHEN NOT c.cold AND g.margin_rank <= $margin_depth THEN g.margin_rank END),
        (5, CASE WHEN c.cold AND g.store_score > 0 AND g.store_rank <= $category_depth THEN g.store_rank END),
        (6, CASE WHEN c.cold AND g.default_score > 0 AND g.default_rank <= $segment_depth THEN g.default_rank END),
        (7, CASE WHEN c.cold AND g.essentials_rank <= $repeat_depth THEN g.essentials_rank END)
    ) s(code, rank)
    WHERE s.rank IS NOT NULL
)
SELECT customer_id, day, offer_id, 1 AS code, rank FROM category_affinity
UNION ALL
SELECT customer_id, day, offer_id, 3, rank FROM repeat_purchase
UNION ALL
SELECT customer_id, day, offer_id, 8, rank FROM embedding
UNION ALL
SELECT customer_id, day, offer_id, code, rank FROM group_picks
