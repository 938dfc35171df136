"""The serving stage: the snapshot file the API reads, and the asset that publishes it.

* :mod:`~metro_assets.serving.snapshot`: the file's contract, atomic writer and
  reader (Polars only; the API imports it through this package).
* :mod:`~metro_assets.serving.publish`: the newest run dates of
  ``recommendations`` published as the snapshot (plain, no Dagster).
* :mod:`~metro_assets.serving.assets`: the ``serving_snapshot`` asset.

The names below are the file contract, re-exported so ``from metro_assets.serving
import write_snapshot`` keeps working for the API and the tools.
"""

from metro_assets.serving.snapshot import (
    DEFAULTS,
    NULLABLE,
    OFFER_KEY,
    SNAPSHOT_COLUMNS,
    SORT_KEY,
    SnapshotContractError,
    SnapshotFile,
    committed_marker_path,
    file_identity,
    read_committed_marker,
    read_snapshot,
    read_snapshot_file,
    validate,
    write_committed_marker,
    write_snapshot,
)

__all__ = [
    "DEFAULTS",
    "NULLABLE",
    "OFFER_KEY",
    "SNAPSHOT_COLUMNS",
    "SORT_KEY",
    "SnapshotContractError",
    "SnapshotFile",
    "committed_marker_path",
    "file_identity",
    "read_committed_marker",
    "read_snapshot",
    "read_snapshot_file",
    "validate",
    "write_committed_marker",
    "write_snapshot",
]
