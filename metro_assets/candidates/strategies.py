"""The retrieval strategies: their codes, priority order and quotas (shared by the pool and its recall)."""

from __future__ import annotations

from metro_assets.settings import CandidateLimits

#: Strategies by code (the codes of ``sql/candidate_picks.sql``): warm customers, then cold start.
WARM_STRATEGIES = ("category_affinity", "segment_popularity", "repeat_purchase", "high_margin", "embedding")
COLD_STRATEGIES = ("store_popularity", "segment_default", "essentials")
STRATEGIES = WARM_STRATEGIES + COLD_STRATEGIES
CODES = {"category_affinity": 1, "segment_popularity": 2, "repeat_purchase": 3, "high_margin": 4,
         "store_popularity": 5, "segment_default": 6, "essentials": 7, "embedding": 8}
#: Priority order: a pair retrieved by several keeps the first, and the cap's slots go in this order.
PRIORITY = ("category_affinity", "embedding", "segment_popularity", "repeat_purchase", "high_margin",
            "store_popularity", "segment_default", "essentials")


def candidate_pool_params(limits: CandidateLimits, priority: tuple[str, ...] = PRIORITY) -> dict:
    """Named parameters of ``sql/candidate_pool.sql`` (quotas, cap, priority as codes)."""
    return {
        "category_limit": limits.category,
        "segment_limit": limits.segment,
        "repeat_limit": limits.repeat,
        "margin_limit": limits.margin,
        "embedding_limit": limits.embedding,
        "max_candidates": limits.max_candidates,
        "priority": [CODES[s] for s in priority],
    }
