"""The daily partitions: one partition per day, keyed ``YYYY-MM-DD``, and the helpers every asset uses."""

from __future__ import annotations

from datetime import date, timedelta

from dagster import AssetExecutionContext, DailyPartitionsDefinition

from metro_assets.settings import Settings


def daily_partitions(settings: Settings) -> DailyPartitionsDefinition:
    """Days from the start of the history to the end of the horizon after it."""
    return DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(),
        end_date=settings.partitions_end.isoformat(),
        fmt="%Y-%m-%d",
    )


def partition_window(context: AssetExecutionContext) -> tuple[date, date]:
    """The [start, end) days this run materializes (one day or a backfill range)."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()


def days(start: date, end: date) -> list[date]:
    """The days of [start, end).

    Examples
    --------
    >>> days(date(2026, 1, 30), date(2026, 2, 2))
    [datetime.date(2026, 1, 30), datetime.date(2026, 1, 31), datetime.date(2026, 2, 1)]
    """
    return [start + timedelta(days=i) for i in range((end - start).days)]
