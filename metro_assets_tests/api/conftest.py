"""Fixtures for the API tests: synthetic snapshots and a real uvicorn server.

``serve_api(path, ...)`` starts the real app (uvicorn, uvloop, httptools, the
snapshot watcher) in a thread on a free 127.0.0.1 port against any snapshot
path, so a test can publish snapshots (or run the pipeline) next to it.
A thread rather than a subprocess keeps the API's lines in the coverage report;
``test_app.py::test_make_serve_command_*`` covers the real ``uvicorn api.app:app`` process.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.server import server_config
from api.settings import ApiSettings
from metro_assets.serving import write_snapshot
from metro_assets_tests.api.snapshots import synthetic_snapshot

CUSTOMERS = 2_000  # ids 1, 3, ..., 3999: even ids are unknown
OFFERS = 10
RUN_DATES = 2


@dataclass
class ApiServer:
    """A running server: its base URL and its app (``app.state.store`` is the snapshot store)."""

    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(settings: ApiSettings) -> ApiServer:
    """Start the API for ``settings`` on a free loopback port; returns once it accepts requests."""
    app = create_app(settings, freeze_gc=False)  # gc.freeze would reach into the whole test process
    # Bind first and hand uvicorn the socket: no window for another process to take the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(app, settings, log_level="warning", access_log=False)  # as `make serve` runs it
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"api-{port}")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the API server did not start (see the captured log)")
        time.sleep(0.01)
    return ApiServer(url=f"http://127.0.0.1:{port}", app=app, server=server, thread=thread)


@pytest.fixture
def serve_api() -> Iterator[Callable[..., ApiServer]]:
    """Factory: ``serve_api(path, reload_seconds=0.1, max_batch=1000, fast_path=True, **limits)`` -> running server.

    ``limits``: other :class:`ApiSettings` fields (``max_header_kb``, ``read_timeout_seconds``, ``max_connections``).
    """
    servers = []

    def serve(
        path: Path, reload_seconds: float = 0.1, max_batch: int = 1000, fast_path: bool = True, **limits
    ) -> ApiServer:
        settings = ApiSettings(
            Path(path), max_batch=max_batch, reload_seconds=reload_seconds, fast_path=fast_path, **limits
        )
        servers.append(start_server(settings))
        return servers[-1]

    yield serve
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def snapshot_frame():
    """The standard test snapshot: 2,000 customers x 10 offers x 2 run dates (2026-02-10, 2026-02-11)."""
    return synthetic_snapshot(customers=CUSTOMERS, offers_per_customer=OFFERS, run_dates=RUN_DATES)


@pytest.fixture(scope="module")
def module_snapshot(tmp_path_factory, snapshot_frame) -> Path:
    """The standard snapshot written once per test module (read-only: do not replace it)."""
    return write_snapshot(snapshot_frame, tmp_path_factory.mktemp("serving") / "serving.parquet")


@pytest.fixture(scope="module")
def api(module_snapshot) -> Iterator[ApiServer]:
    """A server over the standard snapshot, shared by a module's read-only tests."""
    server = start_server(ApiSettings(serving=module_snapshot, reload_seconds=0.5))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_api(module_snapshot) -> Iterator[ApiServer]:
    """The same snapshot served with the fast path off (every request through FastAPI)."""
    server = start_server(ApiSettings(serving=module_snapshot, reload_seconds=0.5, fast_path=False))
    yield server
    server.stop()
