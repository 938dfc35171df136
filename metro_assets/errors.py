"""The error family the pipeline and the API share (no Dagster here).

Every error a user can cause derives from :class:`MetroError` and carries a
one-line message naming the setting, file, column or id at fault. The asset
layer turns them into one-line run failures; the API into 4xx answers; the
CLI into one line on stderr.

Examples
--------
>>> try:
...     raise SettingError("METRO_SEED='x' is not a whole number")
... except MetroError as exc:
...     print(exc)
METRO_SEED='x' is not a whole number
"""

from __future__ import annotations


class MetroError(Exception):
    """Base of the errors a user (a setting, a file, a request) can cause; the message is one line."""


class SettingError(MetroError, ValueError):
    """A setting (environment variable) holds a value the platform cannot use."""


class DataError(MetroError, ValueError):
    """Input data the platform cannot use; the message names the table, column or id."""


class WarehouseLockedError(MetroError):
    """Another process holds the warehouse file (a passing condition: retrying may succeed)."""

    def __init__(self, message: str, database: str = "", holder: str = "", waited: float = 0.0):
        super().__init__(message)
        self.database, self.holder, self.waited = database, holder, waited
