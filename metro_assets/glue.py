"""Small pieces every asset shares: its partition window and clean user errors."""

from __future__ import annotations

import functools
import inspect
from datetime import date

from dagster import AssetExecutionContext, Failure

from metro_assets.resources import SettingError


class DataError(ValueError):
    """Input data the platform cannot use; the message names the table, column or id."""


def partition_window(context: AssetExecutionContext) -> tuple[date, date]:
    """The [start, end) days this run materializes (one day or a backfill range)."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()


def user_errors(fn):
    """Turn a user's mistake (a bad setting or bad data) into a one-line failure."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                return (yield from fn(*args, **kwargs))
            except (SettingError, DataError) as exc:
                raise Failure(description=str(exc), allow_retries=False) from None

        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SettingError, DataError) as exc:
            raise Failure(description=str(exc), allow_retries=False) from None

    return plain
