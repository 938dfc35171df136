"""The HTTP server: uvicorn with httptools, guarded against hostile or broken clients.

``make serve`` runs ``python -m api.server`` (``--host``/``--port``, default
127.0.0.1:8000). uvicorn alone has no limit on the size of a request head when
it parses with httptools (its ``h11_max_incomplete_event_size`` applies only
to the slower h11 parser), no timeout for a request that arrives slowly or a
connection that never sends one (``timeout_keep_alive`` only runs after a
response, and any byte cancels it), and its ``limit_concurrency`` answers 503
to every new request once that many connections are open, idle or not: idle
connections would lock everyone else out. So :class:`GuardedHttpTools` adds, at
the protocol level, three limits read from :mod:`api.settings`:

* **Head size** (``METRO_API_MAX_HEADER_KB``, 80): a request line plus
  headers larger than this gets ``431`` and the connection is closed, after
  at most one more socket read (<= 256 KB) is buffered.
* **Read timeout** (``METRO_API_READ_TIMEOUT_SECONDS``, 10): a request must
  arrive whole (head and body) within this time of its first byte, and a new
  connection must start one within it. Else ``408`` (or a silent close if
  nothing was sent) and the connection is closed. Idle keep-alive connections
  between requests are closed after uvicorn's ``timeout_keep_alive`` (5 s).
* **Connections** (``METRO_API_MAX_CONNECTIONS``, 1000): past the limit, the
  connection that has waited longest on its client (idle, or still sending
  a request) is closed to make room, so a flood of idle or slow connections
  cannot lock out a new client; only when every connection has a request in
  progress does the newcomer get ``503``. One HTTP/1.1 connection runs one
  request at a time, so this also bounds concurrent requests.

The checks cost a clock read and a counter per request (the read-timeout timer is armed
lazily, about once per connection and timeout, not per request), nothing per byte.
Running ``uvicorn api.app:app`` directly still works but without these
guards; docs/API.md says so.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.settings import ApiSettings


def _reply(status: int, text: str) -> bytes:
    """A complete plain-text HTTP/1.1 response that closes the connection."""
    body = text.encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


_activity = itertools.count()


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request a guard has answered already."""


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head-size limit, a read timeout and a connection limit.

    The limits are class attributes: :func:`guarded_protocol` makes a subclass per setting.
    """

    max_head_bytes = 80 * 1024
    read_timeout = 10.0
    max_connections = 1000

    # Per connection: bytes received while the current request head is incomplete, whether a head
    # is being read, since when (loop time) the server waits on the client for a request (None: it
    # has one whole), the pending timer, and when the client last sent something (a global counter,
    # not the clock: uvloop's clock is cached per loop pass, so it would tie whole batches).
    # The timer is lazy: armed when a wait starts and none is pending, never cancelled per request;
    # when it fires it re-arms for what is left of the current wait. So a keep-alive connection
    # costs one clock read per request and one timer per read timeout, not a timer per request.
    _head_bytes = 0
    _in_head = True
    _since: float | None = None
    _timer: asyncio.TimerHandle | None = None
    _last_active = 0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._last_active = next(_activity)
        self._wait()  # a connection must start sending a request within the read timeout
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, plus the guards: a refused request must not also get uvicorn's 400.
        self._unset_keepalive_if_required()
        self._last_active = next(_activity)
        if self._since is None:
            self._wait()  # bytes after a whole request (even bare CRLFs) start the next request's clock
        if self._in_head:
            self._head_bytes += len(data)  # a whole socket read: may include the previous body's tail
        try:
            self.parser.feed_data(data)
        except _Refused:
            return
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                return  # on_headers_complete refused the request and closed the connection
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._since is None:
            self._wait()  # a pipelined request that began in the same read as the previous one

    def on_headers_complete(self) -> None:
        self._in_head = False
        # The read that completed the head may have held more than the limit: measure the head
        # itself, only then (no per-request cost otherwise).
        if self._head_bytes > self.max_head_bytes and self._head_size() > self.max_head_bytes:
            self._refuse_head()
            raise _Refused
        self._head_bytes = 0
        super().on_headers_complete()

    def _head_size(self) -> int:
        """Bytes of the request head just parsed (request line and headers, give or take the separators)."""
        return 16 + len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._since = None  # the whole request is in: the app's time is not the client's
        self._in_head = True  # what comes next is the next request's head
        super().on_message_complete()

    # Guards
    def _wait(self) -> None:
        """Start the read timeout: the client owes a whole request within ``read_timeout`` from now."""
        self._since = self.loop.time()
        if self._timer is None:
            self._timer = self.loop.call_later(self.read_timeout, self._timed_out)

    def _disarm(self) -> None:
        self._since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._since is None or self.transport.is_closing():
            return  # no request owed now: the next byte starts a new wait (and a timer)
        left = self._since + self.read_timeout - self.loop.time()
        if left > 0.001:
            self._timer = self.loop.call_later(left, self._timed_out)  # a later wait than the one armed for
        elif not self._waiting_on_client():
            self._since = self.loop.time()  # a request is being answered: a pipelined one behind it waits
            self._timer = self.loop.call_later(self.read_timeout, self._timed_out)
        elif self._in_head and self._head_bytes == 0:
            self.transport.close()  # never sent a request: nothing to answer
        else:
            self._refuse(408, f"Request not received in full within {self.read_timeout:g} s\n")

    def _refuse_head(self) -> None:
        kb = self.max_head_bytes // 1024
        self.logger.warning("Request head over %d KB refused (METRO_API_MAX_HEADER_KB).", kb)
        self._refuse(431, f"Request head (request line and headers) over {kb} KB\n")

    def _refuse(self, status: int, text: str) -> None:
        self._disarm()
        self.transport.write(_reply(status, text))
        self.transport.close()

    def _waiting_on_client(self) -> bool:
        """True if no request of this connection is being answered (idle, or still receiving one)."""
        cycle = self.cycle
        return cycle is None or cycle.response_complete or cycle.more_body

    def _make_room(self) -> None:
        """Close the connection that has waited longest on its client, or refuse this one."""
        waiting = [
            c for c in self.connections
            if c is not self and isinstance(c, GuardedHttpTools) and not c.transport.is_closing()
            and c._waiting_on_client()
        ]
        if waiting:
            # Close a twentieth of the limit at once: one scan per that many new connections, rather
            # than a scan of every connection for each connect of a flood (15,000 connects: 14 s -> 11 s).
            for oldest in heapq.nsmallest(max(1, self.max_connections // 20), waiting, key=lambda c: c._last_active):
                oldest._disarm()
                oldest.transport.close()
            return
        self.logger.warning("Connection limit reached (METRO_API_MAX_CONNECTIONS=%d).", self.max_connections)
        self._refuse(503, f"Too many connections (more than {self.max_connections} requests in progress)\n")


def guarded_protocol(settings: ApiSettings) -> type[GuardedHttpTools]:
    """A :class:`GuardedHttpTools` subclass with the limits of ``settings``."""
    return type(
        "GuardedHttpTools",
        (GuardedHttpTools,),
        {
            "max_head_bytes": settings.max_header_kb * 1024,
            "read_timeout": settings.read_timeout_seconds,
            "max_connections": settings.max_connections,
        },
    )


def server_config(app, settings: ApiSettings, **options) -> uvicorn.Config:
    """The uvicorn configuration the API runs with (``make serve``, the tests, the benchmark).

    ``options`` go to :class:`uvicorn.Config` (host, port, log_level, access_log, ...).
    """
    options.setdefault("lifespan", "on")
    return uvicorn.Config(app, http=guarded_protocol(settings), **options)


def main(argv: list[str] | None = None) -> None:
    """``python -m api.server [--host H] [--port P] [--no-access-log]``: serve ``api.app:app``."""
    parser = argparse.ArgumentParser(prog="python -m api.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    args = parser.parse_args(argv)
    from api.app import app  # builds the app from the environment (one line and exit on a bad setting)

    uvicorn.Server(server_config(app, app.state.settings, host=args.host, port=args.port,
                                 access_log=args.access_log)).run()


if __name__ == "__main__":
    main()
