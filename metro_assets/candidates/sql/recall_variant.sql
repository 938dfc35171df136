-- One strategy set's pool of $day at the size of the real pool: the picks of
-- candidate_picks except strategy code $left_out (0: none), within their quotas
-- in priority order first, then beyond their quotas (next best of each
-- remaining strategy by rank, then priority) until each customer has as many
-- offers as in candidate_pool. With nothing left out this is the pool itself.
-- Only the customers with a label (recall_labels) are built: the others cannot
-- change a recall, and they are most of the pool (measured: 6x less work).
WITH sizes AS (
    SELECT customer_id, count(*) AS n FROM candidate_pool
    WHERE day = $day AND customer_id IN (SELECT customer_id FROM recall_labels)
    GROUP BY ALL
),
quota AS (
    SELECT * FROM (VALUES (1, $category_limit), (2, $segment_limit), (3, $repeat_limit), (4, $margin_limit),
                          (5, $category_limit), (6, $segment_limit), (7, $repeat_limit), (8, $embedding_limit))
        q(code, n)
),
best AS (
    SELECT p.customer_id, p.offer_id,
           min(CASE WHEN p.rank <= q.n THEN list_position($priority, p.code) * 1000000 + p.rank
                    ELSE 1000000000 + p.rank * 100 + list_position($priority, p.code) END) AS pick
    FROM candidate_picks p JOIN quota q ON q.code = p.code
    WHERE p.code <> $left_out AND p.day = $day AND p.customer_id IN (SELECT customer_id FROM sizes)
    GROUP BY ALL
)
SELECT b.customer_id, b.offer_id
FROM best b JOIN sizes s ON s.customer_id = b.customer_id
QUALIFY row_number() OVER (PARTITION BY b.customer_id ORDER BY b.pick, b.offer_id) <= s.n
