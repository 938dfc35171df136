"""Settings read from the environment, and the warehouse resource.

Every knob of the platform is an environment variable read here and nowhere
else. A bad value raises :class:`SettingError`, whose message is one line that
names the variable, so the CLI, the demo and the assets can show it as is.

Examples
--------
>>> import os
>>> os.environ["METRO_SCALE"] = "tiny"
>>> load_settings().scale.name
'tiny'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from dagster_duckdb import DuckDBResource


class SettingError(ValueError):
    """A setting (environment variable) holds a value the platform cannot use."""


@dataclass(frozen=True)
class Scale:
    """Size of the simulated retailer.

    ``history_days`` is the history `make demo` simulates; the partitions run
    ``horizon_days`` further so scenario days and run dates after the history
    (e.g. 2026-02-11 at the default scale) exist.
    """

    name: str
    customers: int
    products: int
    stores: int
    history_days: int
    active_offers: int
    horizon_days: int = 28
    categories: int = 20


SCALES = {
    "tiny": Scale("tiny", customers=1_500, products=600, stores=4, history_days=42, active_offers=40),
    "demo": Scale("demo", customers=10_000, products=4_000, stores=20, history_days=90, active_offers=200),
    "default": Scale("default", customers=50_000, products=10_000, stores=50, history_days=180, active_offers=200),
}


@dataclass(frozen=True)
class Settings:
    """All settings, validated. Build with :func:`load_settings`."""

    warehouse: Path
    serving: Path
    scale: Scale
    seed: int
    start_date: date

    @property
    def history_end(self) -> date:
        """First day after the simulated history: the demo run date."""
        return self.start_date + timedelta(days=self.scale.history_days)

    @property
    def partitions_end(self) -> date:
        """Exclusive end of the daily partitions."""
        return self.history_end + timedelta(days=self.scale.horizon_days)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def load_settings() -> Settings:
    """Read and validate the ``METRO_*`` environment variables.

    Raises
    ------
    SettingError
        With a one-line message naming the variable at fault.
    """
    scale_name = _env("METRO_SCALE", "default")
    if scale_name not in SCALES:
        raise SettingError(f"METRO_SCALE={scale_name!r} is not one of {', '.join(SCALES)}")
    seed_text = _env("METRO_SEED", "42")
    try:
        seed = int(seed_text)
    except ValueError:
        raise SettingError(f"METRO_SEED={seed_text!r} is not a whole number") from None
    if not 0 <= seed < 2**32:
        raise SettingError(f"METRO_SEED={seed} must be between 0 and 4294967295")
    start_text = _env("METRO_START_DATE", "2025-08-15")
    try:
        start = date.fromisoformat(start_text)
    except ValueError:
        raise SettingError(f"METRO_START_DATE={start_text!r} is not a date like 2025-08-15") from None
    if not date(2000, 1, 1) <= start <= date(2100, 1, 1):
        raise SettingError(f"METRO_START_DATE={start_text} is outside 2000-01-01..2100-01-01")
    return Settings(
        warehouse=Path(_env("METRO_WAREHOUSE", "data/warehouse.duckdb")),
        serving=Path(_env("METRO_SERVING", "data/serving.parquet")),
        scale=SCALES[scale_name],
        seed=seed,
        start_date=start,
    )


def check_writable(path: Path, setting: str) -> None:
    """Fail with one line if ``path`` (a file to create or replace) cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(f"{setting}={path}: cannot create its folder ({exc.strerror})") from None
    if path.is_dir():
        raise SettingError(f"{setting}={path} is a folder, not a file")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SettingError(f"{setting}={path} is not writable")


def warehouse_resource(settings: Settings | None = None) -> DuckDBResource:
    """The warehouse as Dagster's DuckDB resource (it retries a locked file for ~100 s)."""
    settings = settings or load_settings()
    return DuckDBResource(database=str(settings.warehouse))
