"""What every stage's assets share: one-line user failures, check adapters, settings on the record.

This is the asset layer's toolbox; the domain packages below it never import
Dagster (a test enforces it).
"""

from __future__ import annotations

import functools
import inspect
from datetime import date
from typing import Iterator, Mapping, Sequence

import polars as pl
from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    MaterializeResult,
    PartitionsDefinition,
    TableColumn,
    TableSchema,
)

from metro_assets.checking import Check, CheckOutcome
from metro_assets.docs_data_model import catalog, parse_comments
from metro_assets.partitions import days
from metro_assets.errors import DataError, SettingError
from metro_assets.settings import Settings
from metro_assets.warehouse import schema_sql


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


def check_specs(checks: Sequence[Check], partitions: PartitionsDefinition | None = None) -> list[AssetCheckSpec]:
    """Dagster specs for checks that an asset runs itself, partitioned like the asset.

    Partitioned specs let the UI show a check's result on the day it ran for.
    """
    return [
        AssetCheckSpec(c.name, asset=AssetKey(c.asset), description=c.description, blocking=c.blocking,
                       partitions_def=partitions)
        for c in checks
    ]


def _severity(check: Check) -> AssetCheckSeverity:
    return AssetCheckSeverity.ERROR if check.blocking else AssetCheckSeverity.WARN


def _check_metadata(o: CheckOutcome) -> dict:
    return {"failing_rows": o.failing, "examples": str(o.examples), "rule": o.check.description}


def check_results(outcomes: Sequence[CheckOutcome], failing_days: Mapping[str, Sequence[date]] | None = None,
                  context: AssetExecutionContext | None = None,
                  partitions: Sequence[date] | None = None) -> list[AssetCheckResult]:
    """Dagster results; a blocking check that fails stops downstream assets.

    A run over one partition records each result on that partition (the specs
    are partitioned, see :func:`check_specs`). A run over several partitions of
    an asset with partitioned checks logs each check's evaluation on each of
    ``partitions`` first. Either way the days a check failed on are in its metadata.
    """
    failing_days = failing_days or {}
    if context is not None and partitions and len(partitions) > 1:
        for o in outcomes:
            bad = set(failing_days.get(o.check.name, ()))
            for day in partitions:
                context.log_event(AssetCheckEvaluation(
                    asset_key=AssetKey(o.check.asset), check_name=o.check.name,
                    passed=o.passed or (day not in bad and bool(bad)), metadata=_check_metadata(o),
                    severity=_severity(o.check), partition=day.isoformat()))
    return [
        AssetCheckResult(
            check_name=o.check.name,
            asset_key=AssetKey(o.check.asset),
            passed=o.passed,
            severity=_severity(o.check),
            metadata={**_check_metadata(o),
                      **({"failing_days": ", ".join(d.isoformat() for d in failing_days[o.check.name])}
                         if o.check.name in failing_days else {})},
            description=o.skipped,
        )
        for o in outcomes
    ]


def world_metadata(settings: Settings) -> dict[str, str]:
    """Which world a materialization was computed in (every materialization carries it)."""
    return {"metro/world": f"scale {settings.scale.name}, seed {settings.seed}, source {settings.source}"}


def materializations(context: AssetExecutionContext, settings: Settings, rows_per_day: Mapping[date, int],
                     metadata: Mapping | None = None, asset_key: str | None = None) -> Iterator[MaterializeResult]:
    """The materialization of a run's partitions, each with its own day's ``dagster/row_count``.

    Over several partitions (a single-run backfill) each partition's event gets
    its own row count through partition-scoped metadata, so the UI's row count
    of a day is that day's, not the run's, at no extra event.
    """
    world = world_metadata(settings)
    total = sum(rows_per_day.values())
    if len(rows_per_day) > 1:
        key = AssetKey(asset_key) if asset_key else context.asset_key
        for day, rows in rows_per_day.items():
            context.add_asset_metadata({"dagster/row_count": rows}, asset_key=key, partition_key=day.isoformat())
        yield MaterializeResult(asset_key=asset_key, metadata={"rows_written": total, **(metadata or {}), **world})
        return
    yield MaterializeResult(asset_key=asset_key, metadata={"dagster/row_count": total, **(metadata or {}), **world})


def rows_per_day(frame: pl.DataFrame, start: date, end: date, column: str = "day") -> dict[date, int]:
    """Rows of ``frame`` per day of [start, end), zero for days without any."""
    counts = dict(frame.group_by(column).len().iter_rows()) if frame.height else {}
    return {d: int(counts.get(d, 0)) for d in days(start, end)}


@functools.cache
def _columns() -> dict[str, list[TableColumn]]:
    schema = schema_sql()
    notes = {t.name: t.notes for t in parse_comments(schema)}
    return {
        table: [TableColumn(name, str(dtype), description=notes.get(table, {}).get(name))
                for name, dtype, _nullable, _default in columns]
        for table, columns in catalog(schema).items()
    }


#: The warehouse table each asset writes, where it is not the table of the same name.
TABLE_OF_ASSET = {"ranker_model": "model_versions", "bandit_posterior": "bandit_posteriors",
                  "sequence_model": "sequence_models"}


def with_column_schema(spec: AssetSpec) -> AssetSpec:
    """``spec`` with ``dagster/column_schema`` (names, types, descriptions from schema.sql) of its table."""
    table = TABLE_OF_ASSET.get(spec.key.to_user_string(), spec.key.to_user_string())
    columns = _columns().get(table)
    if columns is None:
        return spec
    return spec.merge_attributes(metadata={"dagster/column_schema": TableSchema(columns=columns),
                                           "dagster/table_name": table})


def settings_tags(settings: Settings) -> dict[str, str]:
    """The settings that decide which world a run computes, as run tags (shown in the UI's run list)."""
    return {
        "metro/scale": settings.scale.name,
        "metro/seed": str(settings.seed),
        "metro/source": settings.source,
        "metro/warehouse": settings.warehouse.name,
    }
