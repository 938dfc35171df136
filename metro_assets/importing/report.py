"""Problems found in an import, and the report that lists them.

Examples
--------
>>> p = Problem("orders.csv", "customer_id", "rows are not a whole number", 2, ["abc", "x1"])
>>> p.line()
"orders.csv, column customer_id: 2 rows are not a whole number (e.g. 'abc', 'x1')"
>>> Problem("orders.csv", "order_id", "ids appear more than once", 1, [7]).line()
'orders.csv, column order_id: 1 id appears more than once (e.g. 7)'
>>> str(ImportDataError("/data/acme", [p]))
"import /data/acme: 1 problem; orders.csv, column customer_id: 2 rows are not a whole number (e.g. 'abc', 'x1')"
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metro_assets.errors import DataError

EXAMPLES = 3


@dataclass(frozen=True)
class Problem:
    """One rule broken in a file: ``count`` rows (or ids) and a few examples; 0 for the file as a whole.

    ``issue`` reads after the count: ``"rows are not a whole number"``.
    """

    file: str
    column: str | None
    issue: str
    count: int = 0
    examples: list = field(default_factory=list)

    def line(self) -> str:
        where = self.file if self.column is None else f"{self.file}, column {self.column}"
        issue = self.issue
        if self.count == 1:  # "1 row is", not "1 rows are"
            head = " ".join(issue.split(" ")[:2])
            issue = issue.replace(head, _SINGULAR.get(head, head), 1)
        what = f"{self.count:,} {issue}" if self.count else issue
        shown = ", ".join(repr(_plain(e)) for e in self.examples[:EXAMPLES])
        return f"{where}: {what}" + (f" (e.g. {shown})" if shown else "")


_SINGULAR = {"rows are": "row is", "rows have": "row has", "rows refer": "row refers", "rows fall": "row falls",
             "ids appear": "id appears", "offers end": "offer ends", "products have": "product has"}


def _plain(value):
    """Examples as people read them (dates as text, whole floats without .0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    return value


def format_report(problems: list[Problem]) -> str:
    """The full report: one line per problem."""
    return "\n".join(f"- {p.line()}" for p in problems)


class ImportDataError(DataError):
    """The import breaks the contract; ``str()`` is one line, ``report`` lists every problem."""

    def __init__(self, directory, problems: list[Problem]):
        self.problems = list(problems)
        self.report = format_report(self.problems)
        n = len(self.problems)
        more = "" if n == 1 else f" (first of {n}; the run log lists all)"
        super().__init__(f"import {directory}: {n} problem{'s' if n > 1 else ''}; {self.problems[0].line()}{more}")
