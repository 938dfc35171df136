"""How many day partitions run at once: the Dagster instance's run queue and pool, sized by the settings.

DuckDB has one writer per file, so the project's ``dagster.yaml`` allows one
run and one slot of the ``warehouse`` pool at a time. On the Delta backend a
day partition is its own atomic commit per table, so ``METRO_PARALLEL_DAYS``
runs (one per day of a backfill) may go at once: :func:`instance_config` is
the project's ``dagster.yaml`` with ``concurrency.runs.max_concurrent_runs``
(the QueuedRunCoordinator's limit) and ``concurrency.pools.default_limit``
(the pool every warehouse-writing step claims) set to that number.

Each run is launched by the daemon's run launcher as a new process
(``dagster api execute_run``, not a fork), which is what delta-rs needs; the
steps of one run stay in that process (in-process executor,
``metro_assets.runs``): the parallelism is between days, and a process per
step would re-import the code location for each.

Usage::

    METRO_STORAGE=delta:/data/delta METRO_PARALLEL_DAYS=2 \\
        python -m metro_assets.storage.parallel > $DAGSTER_HOME/dagster.yaml

(``dagster instance concurrency set warehouse 2`` sets the pool of an
existing instance the same way.)

Examples
--------
>>> from metro_assets.settings import StorageSettings
>>> instance_config(StorageSettings("delta", "/tmp/d", 2), {"concurrency": {"runs": {"max_concurrent_runs": 1}}})
{'concurrency': {'runs': {'max_concurrent_runs': 2}, 'pools': {'default_limit': 2}}}
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

from metro_assets.errors import SettingError
from metro_assets.settings import StorageSettings, load_settings

PROJECT_INSTANCE = Path(__file__).parents[2] / "dagster.yaml"


def instance_config(storage: StorageSettings, base: dict) -> dict:
    """``base`` (a dagster.yaml as a dict) with its run queue and pool limits set to ``storage.parallel_days``."""
    config = copy.deepcopy(base)
    concurrency = config.setdefault("concurrency", {})
    concurrency.setdefault("runs", {})["max_concurrent_runs"] = storage.parallel_days
    concurrency.setdefault("pools", {})["default_limit"] = storage.parallel_days
    return config


def main(argv: list[str] | None = None) -> int:
    """Print the project's dagster.yaml sized for the current ``METRO_STORAGE`` / ``METRO_PARALLEL_DAYS``."""
    args = sys.argv[1:] if argv is None else argv
    base = Path(args[0]) if args else PROJECT_INSTANCE
    try:
        settings = load_settings()
    except SettingError as exc:
        print(f"metro-offers: {exc}", file=sys.stderr)
        return 2
    header = (f"# Sized for METRO_STORAGE={settings.storage.backend}"
              f"{':' + settings.storage.delta_uri if settings.storage.delta_uri else ''}, "
              f"METRO_PARALLEL_DAYS={settings.storage.parallel_days} (python -m metro_assets.storage.parallel)\n")
    print(header + yaml.safe_dump(instance_config(settings.storage, yaml.safe_load(base.read_text())),
                                  sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
