-- The pool of each customer and day from the temp table candidate_picks
-- (candidate_picks.sql): each strategy's picks within its quota, a pair
-- retrieved by several keeping the strategy first in priority order, capped at
-- $max_candidates per customer in that order (then by the strategy's rank).
-- Priority (the position in $priority, a list of strategy codes): the order in
-- which strategies claim the cap's slots.
WITH quota AS (
    SELECT * FROM (VALUES (1, $category_limit), (2, $segment_limit), (3, $repeat_limit), (4, $margin_limit),
                          (5, $category_limit), (6, $segment_limit), (7, $repeat_limit), (8, $embedding_limit))
        q(code, n)
),
best AS (
    SELECT p.customer_id, p.day, p.offer_id,
           arg_min(p.code, list_position($priority, p.code) * 1000000 + p.rank) AS code,
           min(list_position($priority, p.code) * 1000000 + p.rank) AS pick
    FROM candidate_picks p JOIN quota q ON q.code = p.code AND p.rank <= q.n
    GROUP BY ALL
)
SELECT customer_id, offer_id, day,
       ['category_affinity', 'segment_popularity', 'repeat_purchase', 'high_margin',
        'store_popularity', 'segment_default', 'essentials', 'embedding'][code] AS strategy
FROM best
QUALIFY row_number() OVER (PARTITION BY customer_id, day ORDER BY pick, offer_id) <= $max_candidates
