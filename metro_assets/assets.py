"""What every stage's assets share: one-line user failures, check adapters, settings on the record.

This is the asset layer's toolbox; the domain packages below it never import
Dagster (a test enforces it).
"""

from __future__ import annotations

import functools
import inspect
from typing import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, Failure

from metro_assets.checking import Check, CheckOutcome
from metro_assets.errors import DataError, SettingError
from metro_assets.settings import Settings


def user_errors(fn):
    """Turn a user's mistake (a bad setting or bad data) into a one-line failure that is not retried."""
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


def check_specs(checks: Sequence[Check]) -> list[AssetCheckSpec]:
    """Dagster specs for checks that an asset runs itself."""
    return [
        AssetCheckSpec(c.name, asset=AssetKey(c.asset), description=c.description, blocking=c.blocking)
        for c in checks
    ]


def check_results(outcomes: Sequence[CheckOutcome]) -> list[AssetCheckResult]:
    """Dagster results; a blocking check that fails stops downstream assets."""
    return [
        AssetCheckResult(
            check_name=o.check.name,
            asset_key=AssetKey(o.check.asset),
            passed=o.passed,
            severity=AssetCheckSeverity.ERROR if o.check.blocking else AssetCheckSeverity.WARN,
            metadata={"failing_rows": o.failing, "examples": str(o.examples), "rule": o.check.description},
            description=o.skipped,
        )
        for o in outcomes
    ]


def settings_tags(settings: Settings) -> dict[str, str]:
    """The settings that decide which world a run computes, as run tags (shown in the UI's run list)."""
    return {
        "metro/scale": settings.scale.name,
        "metro/seed": str(settings.seed),
        "metro/source": settings.source,
        "metro/warehouse": settings.warehouse.name,
    }
