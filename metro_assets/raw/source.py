"""Where the raw tables come from: the simulator or an import (``METRO_SOURCE``).

:func:`raw_batch` is what the raw assets call: the raw tables (and the
simulator's ``sim.*`` truth tables) for the days [start, end). An import has no
oracle, so its truth tables are empty frames: writing them clears the window.

Examples
--------
>>> from datetime import date
>>> from metro_assets.settings import SCALES, Settings
>>> from pathlib import Path
>>> settings = Settings(Path("w.duckdb"), Path("s.parquet"), SCALES["tiny"], 42, date(2025, 8, 15))
>>> batch = raw_batch(settings, date(2025, 8, 15), date(2025, 8, 16))
>>> batch.source, batch.tables["orders"]["day"].unique().to_list()
('simulation', [datetime.date(2025, 8, 15)])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Iterator, Mapping

import polars as pl

from metro_assets.importing.loading import ImportResult, load_import
from metro_assets.settings import Settings
from metro_assets.simulation.scenarios import scenario_shock
from metro_assets.simulation.world import RAW_TABLES, TRUTH_TABLES, simulate, simulate_chunks, window


@dataclass
class RawBatch:
    """Raw and truth tables for a window, with per-table metadata for the materializations."""

    source: str
    tables: dict[str, pl.DataFrame]
    metadata: dict[str, dict] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    stream: Iterator[dict[str, pl.DataFrame]] | None = None  # the tables in pieces instead (:func:`raw_stream`)

    @property
    def imported(self) -> bool:
        return self.source != "simulation"

    def pieces(self) -> Iterator[dict[str, pl.DataFrame]]:
        """The tables, a piece at a time (one piece holding them all when they are not streamed)."""
        if self.stream is None:
            yield self.tables
        else:
            yield from self.stream


def raw_stream(settings: Settings, start: date, end: date,
               partitions: tuple[date, date] | None = None) -> RawBatch:
    """Like :func:`raw_batch`, but a simulation comes as a stream of pieces (a week of events at a time).

    What the raw assets write: a history of 250,000 customers never sits in
    memory whole (docs/SCALING.md). An import is read whole, as :func:`raw_batch` does.
    """
    if settings.import_dir is not None:
        return raw_batch(settings, start, end, partitions)
    shock = scenario_shock(settings)
    pieces = simulate_chunks(settings.scale, settings.seed, settings.start_date, end, shock=shock,
                             exploration=settings.policy.exploration, holdout_share=settings.policy.holdout_share)
    keep = (*RAW_TABLES, *TRUTH_TABLES)
    stream = ({t: f for t, f in window(piece, start, end).items() if t in keep} for piece in pieces)
    return RawBatch("simulation", {}, stream=stream)


def add_rows_per_day(counts: dict[str, dict[date, int]], piece: Mapping[str, pl.DataFrame],
                     column: str = "day") -> None:
    """Add a piece's rows per table and day to ``counts``."""
    for table, frame in piece.items():
        per_day = counts.setdefault(table, {})
        if frame.height:
            for day, n in frame.group_by(column).len().iter_rows():
                per_day[day] = per_day.get(day, 0) + int(n)


def raw_batch(settings: Settings, start: date, end: date, partitions: tuple[date, date] | None = None) -> RawBatch:
    """The raw tables for [start, end) from ``settings.source``; an import is validated whole first.

    ``partitions`` is the [first, end) day range of the asset's partitions
    (default: the settings'): an import's rows must fall inside it. The raw
    assets pass the range their definitions were loaded with, so rows of a
    longer export than the code location knows are reported, not skipped.

    Raises
    ------
    metro_assets.importing.report.ImportDataError
        The import breaks the contract (nothing has been written).
    """
    if settings.import_dir is None:
        shock = scenario_shock(settings)  # METRO_SCENARIO (None: the ordinary world)
        tables = window(simulate(settings.scale, settings.seed, settings.start_date, end, shock=shock,
                                 exploration=settings.policy.exploration,
                                 holdout_share=settings.policy.holdout_share), start, end)
        return RawBatch("simulation", {t: tables[t] for t in (*RAW_TABLES, *TRUTH_TABLES)})
    first, last = partitions or (settings.start_date, settings.partitions_end)
    result = load_import(settings.import_dir, first, last, settings.drop_orphans, settings.import_last_day)
    tables = window(result.tables, start, end)
    tables.update({t: pl.DataFrame() for t in TRUTH_TABLES})  # no oracle for real data
    tables.setdefault("experiment_assignments", pl.DataFrame())  # optional: no holdout in the import
    return RawBatch(settings.source, tables, _metadata(result), result.dropped_detail)


def _metadata(result: ImportResult) -> dict[str, dict]:
    """Per table: its file, orphans dropped and defaulted columns (over the whole import)."""
    out = {}
    for table in RAW_TABLES:
        meta = {"source_file": result.files.get(table, "none"), "orphans_dropped": result.dropped.get(table, 0)}
        if result.defaulted.get(table):
            meta["empty_optional"] = ", ".join(f"{c} {n:,}" for c, n in result.defaulted[table].items())
        out[table] = meta
    out["customers"]["unknown_segment"] = result.unknown_segments
    out["offers"]["unknown_depth"] = result.unknown_depth_offers
    return out
