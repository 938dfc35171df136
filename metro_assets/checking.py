"""Data-quality checks as SQL predicates (no Dagster here; the adapters are in :mod:`metro_assets.assets`).

A :class:`Check` is a SQL query over the warehouse that returns the rows
violating a rule within a partition window (``$start`` <= day < ``$end``).
The check passes when no row comes back. Assets run their checks right after
writing, in the same step, so every materialization carries its results.

Examples
--------
>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute("create table t as select 1 as id, date '2025-08-15' as day")
>>> ok = Check("t_has_ids", "t", "ids are set", "select id from t where id is null and day >= $start and day < $end")
>>> outcome = evaluate_checks(con, [ok], __import__("datetime").date(2025, 8, 15), __import__("datetime").date(2025, 8, 16))[0]
>>> outcome.passed, outcome.failing
(True, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable

import duckdb


EXAMPLES = 5  # violating ids kept per check


@dataclass(frozen=True)
class Check:
    """A named rule: ``sql`` selects the violating rows (first column: an id to show)."""

    name: str
    asset: str
    description: str
    sql: str
    blocking: bool = True


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    failing: int
    examples: list = field(default_factory=list)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return self.failing == 0


def evaluate_checks(con: duckdb.DuckDBPyConnection, checks: Iterable[Check], start: date, end: date,
                    params: dict | None = None) -> list[CheckOutcome]:
    """Run each check's SQL for the window and count the violating rows.

    ``params`` supplies any other ``$name`` the checks use (e.g. ``top_k``).
    """
    outcomes = []
    for check in checks:
        # the first ids in id order: the same examples every time, for the UI and for import reports
        sql = f"select count(*) over () as n, * from ({check.sql}) order by 2 limit {EXAMPLES}"
        given = {"start": start, "end": end, **(params or {})}
        params_used = {k: v for k, v in given.items() if f"${k}" in check.sql}
        rows = con.execute(sql, params_used).fetchall()
        failing = rows[0][0] if rows else 0
        outcomes.append(CheckOutcome(check, failing, [r[1] for r in rows]))
    return outcomes


def evaluate_checks_by_day(con: duckdb.DuckDBPyConnection, checks: Iterable[Check], start: date, end: date,
                           params: dict | None = None) -> tuple[list[CheckOutcome], dict[str, list[date]]]:
    """The window's outcomes, and for a window of several days the days on which each failing check failed.

    A passing check passes on every day of the window, so only failing checks
    are run again day by day: a backfill of 180 clean days costs one query per
    check, and a failure can still be shown on the days it happened.
    """
    checks = list(checks)
    window = evaluate_checks(con, checks, start, end, params)
    failing_days: dict[str, list[date]] = {}
    failing = [o.check for o in window if not o.passed]
    if failing and (end - start).days > 1:
        for offset in range((end - start).days):
            day = start + timedelta(days=offset)
            for o in evaluate_checks(con, failing, day, day + timedelta(days=1), params):
                if not o.passed:
                    failing_days.setdefault(o.check.name, []).append(day)
    return window, failing_days
