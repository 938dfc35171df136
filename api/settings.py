"""The API's settings, read from the environment.

Kept apart from :mod:`metro_assets.settings`: the API reads only its own
variables and never touches the warehouse. ``METRO_SERVING`` means the same file in both.

``METRO_SERVING`` (data/serving.parquet)
    The serving snapshot the API serves.
``METRO_API_MAX_BATCH`` (1000)
    Most customer ids in one batch request (1..100000).
``METRO_API_RELOAD_SECONDS`` (0.5)
    How often to check the snapshot file for a new version (0.05..3600).
``METRO_API_FAST_PATH`` (1)
    0 sends every request through FastAPI's full machinery (see :mod:`api.fastpath`);
    for debugging and the benchmark's comparison.

Examples
--------
>>> load_api_settings({"METRO_API_MAX_BATCH": "50"}).max_batch
50
>>> try:
...     load_api_settings({"METRO_API_MAX_BATCH": "lots"})
... except SettingError as exc:
...     print(exc)
METRO_API_MAX_BATCH='lots' is not a whole number
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from metro_assets.errors import SettingError  # one error family for pipeline and API




@dataclass(frozen=True)
class ApiSettings:
    """Validated API settings; build with :func:`load_api_settings`."""

    serving: Path = Path("data/serving.parquet")
    max_batch: int = 1000
    reload_seconds: float = 0.5
    fast_path: bool = True


def _env(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def load_api_settings(env: Mapping[str, str] | None = None) -> ApiSettings:
    """Read and validate the API's variables from ``env`` (default: ``os.environ``).

    Raises
    ------
    SettingError
        With a one-line message naming the variable at fault.
    """
    env = os.environ if env is None else env
    text = _env(env, "METRO_API_MAX_BATCH", "1000")
    try:
        max_batch = int(text)
    except ValueError:
        raise SettingError(f"METRO_API_MAX_BATCH={text!r} is not a whole number") from None
    if not 1 <= max_batch <= 100_000:
        raise SettingError(f"METRO_API_MAX_BATCH={max_batch} must be between 1 and 100000")
    text = _env(env, "METRO_API_RELOAD_SECONDS", "0.5")
    try:
        reload_seconds = float(text)
    except ValueError:
        raise SettingError(f"METRO_API_RELOAD_SECONDS={text!r} is not a number of seconds") from None
    if not 0.05 <= reload_seconds <= 3600:  # also rejects nan
        raise SettingError(f"METRO_API_RELOAD_SECONDS={text} must be between 0.05 and 3600")
    text = _env(env, "METRO_API_FAST_PATH", "1").lower()
    if text not in ("0", "1", "true", "false"):
        raise SettingError(f"METRO_API_FAST_PATH={text!r} must be 1 or 0")
    fast_path = text in ("1", "true")
    serving = Path(_env(env, "METRO_SERVING", "data/serving.parquet"))
    if serving.is_dir():
        raise SettingError(f"METRO_SERVING={serving} is a folder, not a snapshot file")
    return ApiSettings(serving=serving, max_batch=max_batch, reload_seconds=reload_seconds, fast_path=fast_path)
