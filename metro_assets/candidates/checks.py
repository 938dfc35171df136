"""Checks on the candidate pool: only eligible pairs, within the cap, one row per pair.

The eligibility rule is restated here from the raw tables (not from the
feature tables the pool was built from), so a bug upstream cannot hide.
"""

from __future__ import annotations

from metro_assets.candidates.retrieval import STRATEGIES, segment_in_scope, store_in_scope
from metro_assets.checking import Check
from metro_assets.settings import CandidateLimits

IN_WINDOW = "day >= $start and day < $end"

ELIGIBILITY_SQL = f"""
    with pairs as (
        select p.day, p.customer_id, p.offer_id, c.home_store_id, c.segment,
               c.customer_id is null or c.day >= p.day as unknown_customer
        from candidate_pool p left join customers c on c.customer_id = p.customer_id
        where p.day >= $start and p.day < $end
    ),
    groups as (
        select distinct day, offer_id, home_store_id, segment from pairs where not unknown_customer
    ),
    redeemed as (
        select d.day, r.offer_id, count(*) as n
        from (select distinct day from pairs) d join redemptions r on r.day < d.day
        group by all
    ),
    bad_groups as (
        select g.* from groups g
        left join offers o on o.offer_id = g.offer_id
        left join redeemed r on r.day = g.day and r.offer_id = g.offer_id
        where o.offer_id is null                                   -- unknown offer
           or not (o.start_date <= g.day and g.day <= o.end_date)  -- not active on D
           or o.day >= g.day                                       -- not published before D
           or not {store_in_scope('o.store_scope', 'g.home_store_id')}
           or not {segment_in_scope('o.segment_scope', 'g.segment')}
           or coalesce(r.n, 0) >= o.max_redemptions                -- cap reached before D
    )
    select concat_ws(':', p.customer_id, p.offer_id, p.day) from pairs p
    where p.unknown_customer or exists (
        select 1 from bad_groups b
        where b.day = p.day and b.offer_id = p.offer_id
          and b.home_store_id = p.home_store_id and b.segment = p.segment)
"""


def candidate_checks(limits: CandidateLimits) -> list[Check]:
    """The pool's checks (the cap comes from the settings)."""
    strategies = ", ".join(f"'{s}'" for s in STRATEGIES)
    return [
        Check(
            "candidate_pool_has_only_eligible_pairs",
            "candidate_pool",
            "every pair: customer known before D, offer active and published before D, "
            "store and segment in scope, redemption cap not reached before D",
            ELIGIBILITY_SQL,
        ),
        Check(
            "candidate_pool_is_within_the_cap",
            "candidate_pool",
            f"at most METRO_MAX_CANDIDATES={limits.max_candidates} offers per customer and day",
            f"select customer_id from candidate_pool where {IN_WINDOW} "
            f"group by customer_id, day having count(*) > {int(limits.max_candidates)}",
        ),
        Check(
            "candidate_pool_has_one_row_per_pair",
            "candidate_pool",
            "one row per (customer_id, offer_id, day), with a known strategy",
            f"""select concat_ws(':', customer_id, offer_id) from candidate_pool where {IN_WINDOW}
                group by customer_id, offer_id, day
                having count(*) > 1 or bool_or(strategy not in ({strategies}))""",
        ),
    ]
