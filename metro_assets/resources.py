"""The warehouse resource: Dagster's DuckDB resource with a bounded wait on a locked file."""

from __future__ import annotations

from contextlib import contextmanager

from dagster import Failure
from dagster_duckdb import DuckDBResource
from pydantic import Field

from metro_assets.errors import SettingError, WarehouseLockedError
from metro_assets.settings import Settings
from metro_assets.warehouse import open_warehouse


class WarehouseLocked(Failure):
    """Another process holds the warehouse file; the step fails (and may be retried) with one clear line."""


class WarehouseResource(DuckDBResource):
    """Dagster's DuckDB resource with a bounded, configurable wait on a locked file.

    ``DuckDBResource`` retries a locked file for about 100 s and then fails
    with DuckDB's raw error; this one waits ``lock_timeout`` seconds and fails
    with :class:`WarehouseLocked`, which the jobs' retry policy retries once.
    """

    lock_timeout: float = Field(
        default=100.0,
        description="Seconds a step waits for a warehouse file another process holds (METRO_WAREHOUSE_LOCK_TIMEOUT).",
    )

    storage: str = Field(
        default="duckdb",
        description="METRO_STORAGE: 'duckdb' (the file `database`) or 'delta:<uri>' (Delta tables under <uri>).",
    )

    @contextmanager
    def get_connection(self):
        if self.storage.startswith("delta:"):  # no file lock: each partition is an atomic Delta commit
            from metro_assets.storage.delta import open_delta

            con = open_delta(self.storage[len("delta:"):])
            try:
                yield con
            finally:
                con.close()
            return
        try:
            con = open_warehouse(self.database, self.lock_timeout,
                                 {"custom_user_agent": "dagster", **self.connection_config})
        except WarehouseLockedError as exc:
            raise WarehouseLocked(
                description=str(exc),
                metadata={"warehouse": exc.database, "held_by": exc.holder, "waited_seconds": exc.waited},
                allow_retries=True,
            ) from None
        except SettingError as exc:  # e.g. not a DuckDB file: retrying cannot help
            raise Failure(description=str(exc), allow_retries=False) from None
        try:
            yield con
        finally:
            con.close()


def warehouse_resource(settings: Settings) -> WarehouseResource:
    """The warehouse as a DuckDB resource that waits ``METRO_WAREHOUSE_LOCK_TIMEOUT`` for a locked file."""
    storage = "duckdb" if settings.storage.delta_uri is None else f"delta:{settings.storage.delta_uri}"
    return WarehouseResource(database=str(settings.warehouse), lock_timeout=settings.ops.lock_timeout,
                             storage=storage)
