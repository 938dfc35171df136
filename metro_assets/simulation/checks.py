"""Data-quality checks on the raw tables (run with every raw materialization).

The rules themselves live in :mod:`metro_assets.simulation.rules` (no Dagster),
which the import validation runs too, over its staged tables before writing:
the checks and the validation cannot disagree.
"""

from __future__ import annotations

from metro_assets.checking import Check
from metro_assets.simulation.rules import RAW_RULES

RAW_CHECKS = [rule.check for rule in RAW_RULES]

SEGMENT_TARGETS = {"budget": 0.40, "premium": 0.20, "family": 0.30, "horeca": 0.10}

SEGMENT_SHARES_CHECK = Check(
    "customer_segments_match_targets",
    "customers",
    "each segment's share of all customers is within 2 points of its target, or 3 standard errors "
    "for small populations (simulated data)",
    "select segment from (select segment, count(*) / sum(count(*)) over () as share, sum(count(*)) over () as n "
    "from customers group by segment) join (values "
    + ", ".join(f"('{s}', {p})" for s, p in SEGMENT_TARGETS.items())
    + ") as t(segment, target) using (segment) "
    "where abs(share - target) > greatest(0.02, 3 * sqrt(target * (1 - target) / n))",
)
