"""Hostile clients against the real server (uvicorn + the guarded protocol): big heads, slow requests, floods.

Every test talks raw TCP over loopback, is bounded (bytes, sockets, seconds), and checks that ``/health``
keeps answering fast meanwhile. Limits are set small (8 KB heads, 1 s read timeout, 20 connections) so the
tests take seconds; their defaults are checked in test_settings.py.
"""

import socket
import threading
import time

import httpx
import pytest

from api.settings import ApiSettings
from metro_assets_tests.api.conftest import start_server

HEAD_KB = 8
READ_TIMEOUT = 1.0
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def guarded(module_snapshot):
    settings = ApiSettings(serving=module_snapshot, max_header_kb=HEAD_KB, read_timeout_seconds=READ_TIMEOUT,
                           max_connections=MAX_CONNECTIONS)
    server = start_server(settings)
    yield server
    server.stop()


def address(api) -> tuple[str, int]:
    host, port = api.url.removeprefix("http://").split(":")
    return host, int(port)


def read_reply(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def health_seconds(api) -> float:
    """Seconds a fresh client waits for a 200 from /health."""
    started = time.perf_counter()
    response = httpx.get(f"{api.url}/health", timeout=10)
    assert response.status_code == 200
    return time.perf_counter() - started


def test_a_head_over_the_limit_gets_431_and_one_under_it_is_served(guarded):
    def request(header_bytes: int) -> bytes:
        with socket.create_connection(address(guarded), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * header_bytes + b"\r\n"
                         b"Connection: close\r\n\r\n")
            return read_reply(sock)

    assert request((HEAD_KB - 1) * 1024).startswith(b"HTTP/1.1 200 ")
    refused = request((HEAD_KB + 1) * 1024)
    assert refused.startswith(b"HTTP/1.1 431 ")
    assert f"over {HEAD_KB} KB".encode() in refused


def test_an_endless_header_is_cut_off_early_while_health_stays_fast(guarded):
    """Stock uvicorn+httptools reads a 150 MB header whole; here the server hangs up after ~8 KB."""
    sent, chunk, timings = 0, b"a" * 65536, []
    with socket.create_connection(address(guarded), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Endless: ")
        try:
            while sent < 64 * 2**20:  # bounded: 64 MB at most
                sock.sendall(chunk)
                sent += len(chunk)
                if sent % 2**20 == 0:
                    timings.append(health_seconds(guarded))
        except OSError:  # reset or broken pipe: the server closed the connection
            pass
    assert sent < 16 * 2**20, f"the server took {sent / 2**20:.0f} MB of header"
    timings.append(health_seconds(guarded))
    assert max(timings) < 1.0, timings


def test_an_incomplete_head_is_answered_408_within_the_read_timeout(guarded):
    with socket.create_connection(address(guarded), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # never the blank line
        started = time.monotonic()
        reply = read_reply(sock)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 ") and b"within 1 s" in reply
    assert READ_TIMEOUT * 0.8 < waited < READ_TIMEOUT + 2


def test_a_slow_body_is_answered_408(guarded):
    with socket.create_connection(address(guarded), timeout=5) as sock:
        sock.sendall(b"POST /recommendations/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n[1, 3")  # 95 bytes never come
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_a_slowloris_dribble_and_a_silent_connection_are_closed(guarded):
    """One byte every 0.2 s would keep stock uvicorn's connection forever (any byte resets its timer)."""
    outcome = {}

    def dribble():
        head = b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 200
        started = time.monotonic()
        with socket.create_connection(address(guarded), timeout=5) as sock:
            try:
                for byte in head:  # bounded: ~46 s if never cut
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.monotonic() - started > 6:
                        break
            except OSError:
                pass
            outcome["dribble"] = (read_reply(sock, timeout=2), time.monotonic() - started)

    thread = threading.Thread(target=dribble)
    thread.start()
    with socket.create_connection(address(guarded), timeout=5) as silent:
        started = time.monotonic()
        assert read_reply(silent) == b""  # closed without a word: it never sent a request
        assert time.monotonic() - started < READ_TIMEOUT + 2
    assert health_seconds(guarded) < 1.0
    thread.join(timeout=15)
    reply, seconds = outcome["dribble"]
    assert seconds < READ_TIMEOUT + 3, seconds
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408 ")


def test_idle_connections_past_the_limit_make_room_for_new_clients(serve_api, module_snapshot):
    """A flood of idle connections: the longest-idle ones are closed, new clients are still served fast."""
    api = serve_api(module_snapshot, max_connections=MAX_CONNECTIONS, read_timeout_seconds=30)
    connections = api.server.server_state.connections
    flood = []
    try:
        for _ in range(MAX_CONNECTIONS + 30):  # bounded: 50 sockets
            flood.append(socket.create_connection(address(api), timeout=5))
        timings = [health_seconds(api) for _ in range(5)]
        assert max(timings) < 1.0, timings
        assert len(connections) <= MAX_CONNECTIONS
        # The first ones opened were idle longest: the server has closed them (EOF), well before any timeout.
        assert all(read_reply(sock, timeout=2) == b"" for sock in flood[:25])
    finally:
        for sock in flood:
            sock.close()



def test_a_keep_alive_client_outliving_the_read_timeout_is_not_cut_off(guarded):
    """Requests every 0.3 s on one connection for ~2.5 read timeouts: each is whole in time, none is refused."""
    replies = []
    with socket.create_connection(address(guarded), timeout=5) as sock:
        sock.settimeout(5)
        for _ in range(8):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                assert chunk, "the server closed a healthy keep-alive connection"
                head += chunk
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += sock.recv(65536)
            replies.append(head.split(b" ", 2)[1])
            time.sleep(0.3)
    assert replies == [b"200"] * 8
