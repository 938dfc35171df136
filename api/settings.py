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
``METRO_API_MAX_HEADER_KB`` (80)
    Largest request head (request line and headers) in KiB; a larger one gets 431 (1..1024).
``METRO_API_READ_TIMEOUT_SECONDS`` (10)
    A request must arrive whole (head and body) within this many seconds of its first byte,
    and a new connection must send one within it; else 408 and the connection is closed (0.1..600).
``METRO_API_MAX_CONNECTIONS`` (1000)
    Most open connections; past it the connection idle the longest is closed to make room,
    or the new one gets 503 when every connection is busy (1..100000). See :mod:`api.server`.

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

import math
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
    max_header_kb: int = 80
    read_timeout_seconds: float = 10.0
    max_connections: int = 1000


def _env(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = _env(env, name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingError(f"{name}={value} must be between {low} and {high}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    text = _env(env, name, str(default))
    try:
        value = float(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a number of seconds") from None
    if math.isnan(value) or not low <= value <= high:
        raise SettingError(f"{name}={text} must be between {low:g} and {high:g}")
    return value


def load_api_settings(env: Mapping[str, str] | None = None) -> ApiSettings:
    """Read and validate the API's variables from ``env`` (default: ``os.environ``).

    Raises
    ------
    SettingError
        With a one-line message naming the variable at fault.
    """
    env = os.environ if env is None else env
    max_batch = _whole(env, "METRO_API_MAX_BATCH", 1000, 1, 100_000)
    reload_seconds = _seconds(env, "METRO_API_RELOAD_SECONDS", 0.5, 0.05, 3600)
    text = _env(env, "METRO_API_FAST_PATH", "1").lower()
    if text not in ("0", "1", "true", "false"):
        raise SettingError(f"METRO_API_FAST_PATH={text!r} must be 1 or 0")
    fast_path = text in ("1", "true")
    max_header_kb = _whole(env, "METRO_API_MAX_HEADER_KB", 80, 1, 1024)
    read_timeout = _seconds(env, "METRO_API_READ_TIMEOUT_SECONDS", 10, 0.1, 600)
    max_connections = _whole(env, "METRO_API_MAX_CONNECTIONS", 1000, 1, 100_000)
    serving = Path(_env(env, "METRO_SERVING", "data/serving.parquet"))
    if serving.is_dir():
        raise SettingError(f"METRO_SERVING={serving} is a folder, not a snapshot file")
    return ApiSettings(
        serving=serving,
        max_batch=max_batch,
        reload_seconds=reload_seconds,
        fast_path=fast_path,
        max_header_kb=max_header_kb,
        read_timeout_seconds=read_timeout,
        max_connections=max_connections,
    )
