"""Generate ``docs/DATA_MODEL.md`` from ``metro_assets/schema.sql``, so the document cannot drift.

DuckDB itself reads the schema (names, types, nullability, defaults come from
its catalog); the comments in ``schema.sql`` supply the descriptions: the
comment block above a table describes it, a ``-- comment`` after a column
describes the column.

Run ``python -m metro_assets.docs_data_model`` (or ``make docs``) after
changing the schema; ``--check`` exits 1 when the committed document is stale
(a test runs it).

Examples
--------
>>> text = render("-- People.\\nCREATE TABLE IF NOT EXISTS t (\\n    id BIGINT NOT NULL, -- the key\\n    day DATE NOT NULL\\n);")
>>> "| `id` | BIGINT | no |  | the key |" in text
True
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

PACKAGE = Path(__file__).parent
SCHEMA = PACKAGE / "schema.sql"
DOC = PACKAGE.parent / "docs" / "DATA_MODEL.md"

# The asset that writes each table, where it is not the asset of the same name.
WRITERS = {"model_versions": "ranker_model", "evaluation_sums": "offline_evaluation"}
SIM_WRITER = "`raw_tables` (the simulator's hidden truth; empty for imported data)"

_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS\s+([\w.]+)\s*\(", re.IGNORECASE)
_COLUMN = re.compile(r"^\s*(\w+)\s+[^-]*?(?:--\s*(.*))?$")


@dataclass
class Table:
    name: str
    intro: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def parse_comments(schema: str) -> list[Table]:
    """Tables in file order, each with the comment block above it and its columns' trailing comments."""
    tables: list[Table] = []
    pending: list[str] = []
    current: Table | None = None
    for line in schema.splitlines():
        stripped = line.strip()
        if current is not None:
            if stripped.startswith(")"):
                current = None
                continue
            match = _COLUMN.match(line)
            if match and match.group(2):
                current.notes[match.group(1)] = match.group(2).strip()
            continue
        if stripped.startswith("--"):
            pending.append(stripped[2:].strip())
        elif (create := _CREATE.search(stripped)) is not None:
            current = Table(create.group(1), intro=pending)
            tables.append(current)
            pending = []
        elif not stripped:
            pending = []  # a comment block describes a table only when the table follows it directly
        elif not stripped.upper().startswith("CREATE SCHEMA"):
            pending = []
    return tables


def catalog(schema: str) -> dict[str, list[tuple]]:
    """Columns per table as DuckDB creates them: (name, type, nullable, default)."""
    con = duckdb.connect()
    try:
        con.execute(schema)
        rows = con.sql(
            "SELECT schema_name, table_name, column_name, data_type, is_nullable, column_default "
            "FROM duckdb_columns() WHERE database_name = current_database() ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    columns: dict[str, list[tuple]] = {}
    for schema_name, table, column, dtype, nullable, default in rows:
        name = table if schema_name == "main" else f"{schema_name}.{table}"
        columns.setdefault(name, []).append((column, dtype, nullable, default))
    return columns


def render(schema: str) -> str:
    """The Markdown document for a schema text."""
    tables = parse_comments(schema)
    columns = catalog(schema)
    missing = set(columns) - {t.name for t in tables}
    if missing:
        raise ValueError(f"schema.sql: tables created without 'CREATE TABLE IF NOT EXISTS': {sorted(missing)}")
    out = [
        "# Data model",
        "",
        "<!-- Generated from metro_assets/schema.sql by `python -m metro_assets.docs_data_model`"
        " (make docs). Do not edit by hand: a test fails when this file and the schema differ. -->",
        "",
        "Every table lives in the one DuckDB warehouse (`METRO_WAREHOUSE`). Every table is partitioned by day:"
        " its partition column is `day` (or `run_date` for the outputs), and re-materializing a partition"
        " replaces its rows in one transaction. Keys are not declared as constraints; asset checks test them"
        " (see docs/OPERATIONS.md).",
        "",
        "| table | partition column | written by | columns |",
        "|---|---|---|---|",
    ]
    for t in tables:
        names = [c[0] for c in columns[t.name]]
        partition = "run_date" if "run_date" in names else "day"
        out.append(f"| [`{t.name}`](#{t.name.replace('.', '')}) | `{partition}` | {_writer(t.name)} | {len(names)} |")
    for t in tables:
        out += ["", f"## {t.name}", ""]
        intro = " ".join(line for line in t.intro if line).strip()
        if intro:
            out += [intro, ""]
        out += [f"Written by: {_writer(t.name)}.", "",
                "| column | type | null | default | meaning |", "|---|---|---|---|---|"]
        for name, dtype, nullable, default in columns[t.name]:
            note = t.notes.get(name, "").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            out.append(f"| `{name}` | {dtype} | {'yes' if nullable else 'no'} | {default or ''} | {note} |")
    return "\n".join(out) + "\n"


def _writer(table: str) -> str:
    if table.startswith("sim."):
        return SIM_WRITER
    if table in WRITERS:
        return f"`{WRITERS[table]}`"
    return f"`{table}`" if table not in {"customers", "products", "offers", "orders", "order_items", "impressions",
                                          "redemptions"} else "`raw_tables` (simulation or import)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render(SCHEMA.read_text())
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run `python -m metro_assets.docs_data_model`", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
