"""The daily partitions: one partition per day, keyed ``YYYY-MM-DD``."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

from metro_assets.resources import Settings


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """Days from the start of the history to the end of the horizon after it."""
    return DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(),
        end_date=settings.partitions_end.isoformat(),
        fmt="%Y-%m-%d",
    )
