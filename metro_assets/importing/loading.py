"""Read, validate and normalise an import into the warehouse's raw tables.

:func:`load_import` does all of it in an in-memory DuckDB, before anything is
written: it either returns every raw table in the warehouse's shape (each row
with its ``day``) or raises :class:`ImportDataError` listing every problem.

The steps, in order (a step's problems stop the import before the next):

1. files: each table has ``<table>.parquet`` or ``<table>.csv``;
2. columns and types: required columns exist and hold a value; every value
   casts to its type (ids whole numbers, dates and timestamps parse);
3. keys: no id appears twice; offers do not end before they start;
4. references: every id refers to a known row (orphans are fatal, or dropped
   and counted with ``drop_orphans``, a parent's before its children's);
5. days: every row falls inside the partitions [first_day, end).

Examples
--------
>>> import tempfile, pathlib, datetime
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> for name, text in {"customers": "customer_id,home_store_id\\n1,3\\n",
...                    "products": "product_id,category\\n7,dairy\\n",
...                    "offers": "offer_id,product_id,start_date,end_date\\n",
...                    "orders": "order_id,customer_id,store_id,order_timestamp\\n5,1,3,2025-08-15 10:00:00\\n",
...                    "order_items": "order_id,product_id,quantity,unit_price\\n5,7,2,1.25\\n",
...                    "impressions": "customer_id,offer_id,shown_timestamp\\n",
...                    "redemptions": "customer_id,offer_id,redeemed_timestamp\\n"}.items():
...     _ = (folder / f"{name}.csv").write_text(text)
>>> result = load_import(folder, datetime.date(2025, 8, 15), datetime.date(2025, 9, 1))
>>> result.tables["orders"].select("total_amount", "num_items").row(0)
(2.5, 1)
>>> result.tables["products"]["base_price"][0], result.tables["customers"]["segment"][0]
(1.25, 'unknown')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl

from metro_assets.importing import reading
from metro_assets.importing.contract import Column, CONTRACT, KINDS, REFERENCES, TABLES
from metro_assets.importing.report import EXAMPLES, ImportDataError, Problem
from metro_assets.warehouse import read_sql

SQL_PACKAGE = "metro_assets.importing"
WHOLE = r"[+-]?[0-9]+(\.0*)?"  # '12' and '12.0' (a float column written as text), not '12.5'

# The source column each table's day comes from, to show in "outside the partitions" examples.
DAY_SOURCE = {"customers": "join_date", "offers": "start_date", "orders": "order_timestamp",
              "impressions": "shown_timestamp", "redemptions": "redeemed_timestamp"}
# Dimension rows from before the history belong to its first day; events must not predate it.
EVENTS = ("orders", "impressions", "redemptions")


@dataclass
class ImportResult:
    """An import in the warehouse's shape, and what was defaulted or dropped on the way."""

    tables: dict[str, pl.DataFrame]
    dropped: dict[str, int] = field(default_factory=dict)        # orphan rows dropped, per table
    dropped_detail: list[str] = field(default_factory=list)      # one line per reference
    defaulted: dict[str, dict[str, int]] = field(default_factory=dict)  # rows per optional column left empty
    unknown_segments: int = 0
    unknown_depth_offers: int = 0
    files: dict[str, str] = field(default_factory=dict)


def load_import(directory: str | Path, first_day: date, end: date, drop_orphans: bool = False) -> ImportResult:
    """Validate and normalise the import in ``directory`` for the partitions [first_day, end).

    Parameters
    ----------
    directory : path
        Folder with ``<table>.parquet`` or ``<table>.csv`` for the seven raw tables.
    first_day, end : date
        The partitions: events must fall in [first_day, end); earlier
        customers and offers belong to ``first_day``.
    drop_orphans : bool
        Drop rows that refer to unknown ids (counted in the result) instead of failing.

    Raises
    ------
    ImportDataError
        A one-line summary; ``.report`` and ``.problems`` list every problem.
    """
    directory = Path(directory)
    con = reading.connect()
    try:
        return _Import(con, directory, first_day, end, drop_orphans).run()
    finally:
        con.close()


class _Import:
    def __init__(self, con, directory: Path, first_day: date, end: date, drop_orphans: bool):
        self.con, self.directory = con, directory
        self.first_day, self.end, self.drop_orphans = first_day, end, drop_orphans
        self.files: dict[str, Path] = {}

    def fail_if(self, problems: list[Problem]) -> None:
        if problems:
            raise ImportDataError(self.directory, problems)

    def run(self) -> ImportResult:
        self.files, problems = reading.locate(self.directory)
        columns = {}
        for table, path in self.files.items():
            found, read_problems = self.read(table, path)
            problems += read_problems
            if found is not None and not read_problems:
                columns[table] = found
                problems += self.check_values(table, columns[table])
        self.fail_if(problems)
        for table in TABLES:
            self.cast(table, columns[table])
        result = ImportResult(tables={}, files={t: p.name for t, p in self.files.items()})
        result.defaulted = self.count_defaults()
        self.fail_if(self.check_keys())
        self.fill_ids(result.defaulted)
        result.dropped, result.dropped_detail = self.resolve_orphans()
        self.normalise()
        self.fail_if(self.check_days())
        result.tables = {t: self.con.sql(f"select * from norm_{t}").pl() for t in TABLES}
        result.unknown_segments = result.tables["customers"].filter(pl.col("segment") == "unknown").height
        result.unknown_depth_offers = result.tables["offers"].filter(pl.col("discount_type").is_null()).height
        return result

    # -- step 2: columns and types ---------------------------------------------------------

    def read(self, table: str, path: Path) -> tuple[dict[str, tuple[str, str]] | None, list[Problem]]:
        """Load the file into ``src_<table>``; its columns by normalised name -> (name, type)."""
        try:
            self.con.execute(f"create table src_{table} as select * from {reading.source_sql(path)}")
        except duckdb.Error as exc:
            reason = str(exc).strip().splitlines()[0][:200]
            return None, [Problem(path.name, None, f"cannot be read as {path.suffix[1:]} ({reason})")]
        columns, problems = {}, []
        for name, type_, *_ in self.con.sql(f"describe src_{table}").fetchall():
            key = name.strip().lower()  # 'Customer_ID ' matches customer_id
            if key in columns:
                problems.append(Problem(path.name, key, "appears twice (names match ignoring case and spaces)"))
            columns[key] = (name, type_)
        problems += [Problem(path.name, c.name, "is missing (a required column)")
                     for c in CONTRACT[table].required if c.name not in columns]
        return columns, problems

    def check_values(self, table: str, columns: dict) -> list[Problem]:
        """Values that do not cast to their column's type, and required columns left empty."""
        present = [c for c in CONTRACT[table].columns if c.name in columns]
        exprs = {c.name: _expressions(columns[c.name], c) for c in present}
        aggregates = []
        for c in present:
            raw, cast = exprs[c.name]
            aggregates += [f"count_if({raw} is not null and {cast} is null)",
                           f"count_if({raw} is null)" if c.required else "0"]
        counts = self.con.sql(f"select {', '.join(aggregates)} from src_{table}").fetchall()[0]
        problems, name = [], self.files[table].name
        for i, c in enumerate(present):
            raw, cast = exprs[c.name]
            bad, empty = counts[2 * i], counts[2 * i + 1]
            if bad:
                examples = self.con.sql(f"select {raw} from src_{table} where {raw} is not null and {cast} is null "
                                        f"group by 1 order by min(rowid) limit {EXAMPLES}").fetchall()
                problems.append(Problem(name, c.name, f"rows are not {KINDS[c.kind][1]}", bad,
                                        [r[0] for r in examples]))
            if empty:
                rows = self.con.sql(f"select rowid + 1 from src_{table} where {raw} is null order by rowid "
                                    f"limit {EXAMPLES}").fetchall()
                problems.append(Problem(name, c.name, "rows have no value (a required column)", empty,
                                        [f"row {r[0]}" for r in rows]))
        return problems

    def cast(self, table: str, columns: dict) -> None:
        """``typed_<table>``: every contract column in its type (absent optional ones NULL), and ``_row``."""
        select = [f"{_expressions(columns[c.name], c)[1]} as {c.name}" if c.name in columns
                  else f"null::{c.sql_type} as {c.name}" for c in CONTRACT[table].columns]
        self.con.execute(f"create table typed_{table} as select {', '.join(select)}, rowid as _row from src_{table}")
        self.con.execute(f"drop table src_{table}")

    def count_defaults(self) -> dict[str, dict[str, int]]:
        out = {}
        for table in TABLES:
            optional = CONTRACT[table].optional
            counts = self.con.sql(f"select {', '.join(f'count_if({c.name} is null)' for c in optional)} "
                                  f"from typed_{table}").fetchall()[0]
            out[table] = {c.name: n for c, n in zip(optional, counts) if n}
        return out

    # -- step 3: keys ----------------------------------------------------------------------

    def check_keys(self) -> list[Problem]:
        problems = []
        for table in TABLES:
            key = CONTRACT[table].key
            rows = self.con.sql(f"select {key}, count(*) over () from typed_{table} where {key} is not null "
                                f"group by {key} having count(*) > 1 order by min(_row) limit {EXAMPLES}").fetchall()
            if rows:
                problems.append(Problem(self.files[table].name, key, "ids appear more than once", rows[0][1],
                                        [r[0] for r in rows]))
        rows = self.con.sql(f"select offer_id, count(*) over () from typed_offers where end_date < start_date "
                            f"order by _row limit {EXAMPLES}").fetchall()
        if rows:
            problems.append(Problem(self.files["offers"].name, "end_date", "offers end before they start (offer_id)",
                                    rows[0][1], [r[0] for r in rows]))
        return problems

    def fill_ids(self, defaulted: dict[str, dict[str, int]]) -> None:
        """Number rows without an id after the largest given one, in file order; find redemptions' orders."""
        for table in ("order_items", "impressions", "redemptions"):
            key = CONTRACT[table].key
            if defaulted[table].get(key):
                self.con.execute(
                    f"update typed_{table} set {key} = g.id from ("
                    f"  select _row, (select coalesce(max({key}), 0) from typed_{table})"
                    f"         + row_number() over (order by _row) as id"
                    f"  from typed_{table} where {key} is null) g "
                    f"where typed_{table}._row = g._row")
        if defaulted["redemptions"].get("order_id"):
            self.con.execute(f"update typed_redemptions set order_id = d.order_id "
                             f"from ({read_sql(SQL_PACKAGE, 'redemption_orders')}) d "
                             f"where typed_redemptions._row = d._row")

    # -- step 4: references ----------------------------------------------------------------

    def resolve_orphans(self) -> tuple[dict[str, int], list[str]]:
        """Report rows that refer to unknown ids, or drop them (parents first, so drops cascade)."""
        problems, dropped, detail = [], {t: 0 for t in TABLES}, []
        for ref in REFERENCES:
            child, parent = f"typed_{ref.table}", f"typed_{ref.parent}"
            orphan = (f"not exists (select 1 from {parent} p where p.{ref.parent_column} = {child}.{ref.column})")
            rows = self.con.sql(f"select {ref.column}, count(*) over () from {child} where {orphan} "
                                f"order by _row limit {EXAMPLES}").fetchall()
            if not rows:
                continue
            if ref.column == "order_id" and ref.table == "redemptions":
                issue = "rows refer to no known order (order_id unknown, or none that day to derive it from)"
            else:
                issue = f"rows refer to a {ref.parent_column} not in {self.files[ref.parent].name}"
            problem = Problem(self.files[ref.table].name, ref.column, issue, rows[0][1], [r[0] for r in rows])
            if self.drop_orphans:
                self.con.execute(f"delete from {child} where {orphan}")
                dropped[ref.table] += rows[0][1]
                detail.append(f"dropped: {problem.line()}")
            else:
                problems.append(problem)
        self.fail_if(problems)
        return dropped, detail

    # -- step 5: the warehouse's shape and the partitions ----------------------------------

    def normalise(self) -> None:
        for table in TABLES:
            sql = read_sql(SQL_PACKAGE, table)
            params = {"first_day": self.first_day} if "$first_day" in sql else {}
            self.con.execute(f"create table norm_{table} as {sql}", params)
        for table in TABLES:
            self.con.execute(f"drop table typed_{table}")

    def check_days(self) -> list[Problem]:
        last = self.end - timedelta(days=1)
        problems = []
        for table, column in DAY_SOURCE.items():
            early = "day < $first_day or " if table in EVENTS else ""
            rows = self.con.sql(f"select {column}, count(*) over () from norm_{table} where {early}day >= $end "
                                f"order by {column} limit {EXAMPLES}",
                                params={"first_day": self.first_day, "end": self.end} if early else {"end": self.end},
                                ).fetchall()
            if rows:
                problems.append(Problem(
                    self.files[table].name, column,
                    f"rows fall outside the partitions {self.first_day}..{last} (they run from METRO_START_DATE or "
                    "the first event day to 28 days after the last; reload the code location after changing the "
                    "files)", rows[0][1], [r[0] for r in rows]))
        rows = self.con.sql(f"select product_id, count(*) over () from norm_products where base_price is null "
                            f"limit {EXAMPLES}").fetchall()
        if rows:
            problems.append(Problem(self.files["products"].name, "base_price",
                                    "products have no base_price and no sales to derive it from",
                                    rows[0][1], [r[0] for r in rows]))
        return problems


def _expressions(source: tuple[str, str], column: Column) -> tuple[str, str]:
    """(raw, cast) SQL for one source column: the value as read (blank text is NULL) and in its type."""
    name, source_type = source
    quoted = '"' + name.replace('"', '""') + '"'
    st, kind, target = source_type.upper(), column.kind, column.sql_type
    if st == "VARCHAR":
        raw = f"nullif(trim({quoted}), '')"
        if kind in ("id", "int"):
            cast = (f"try_cast(case when regexp_full_match({raw}, '{WHOLE}') "
                    f"then regexp_replace({raw}, '\\.0*$', '') end as {target})")
        elif kind == "date":
            cast = f"try_cast(try_cast({raw} as timestamp) as date)"  # '2025-08-15' or with a time
        elif kind == "text":
            cast = raw
        else:
            cast = f"try_cast({raw} as {target})"
        return raw, cast
    if kind in ("id", "int") and (st in ("FLOAT", "DOUBLE") or st.startswith("DECIMAL")):
        return quoted, f"case when {quoted} = floor({quoted}) then try_cast({quoted} as {target}) end"
    if kind in ("date", "timestamp"):
        if st == "TIMESTAMP WITH TIME ZONE":
            return quoted, f"try_cast(timezone('UTC', {quoted}) as {target})"
        if st == "DATE" or st.startswith("TIMESTAMP"):
            return quoted, f"try_cast({quoted} as {target})"
        return quoted, f"null::{target}"  # a number is not a date
    if kind == "text":
        return quoted, f"nullif(trim(try_cast({quoted} as varchar)), '')"
    return quoted, f"try_cast({quoted} as {target})"
