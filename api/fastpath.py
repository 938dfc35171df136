"""A fast path for the hot requests: ``GET /recommendations`` with plain parameters, and ``GET /health``.

FastAPI's per-request machinery (routing, dependency solving, Pydantic
validation of each query parameter) costs ~3x more than the lookup itself:
on the 2-core box a trivial FastAPI endpoint with one validated query
parameter peaks near 7k requests/s, a bare ASGI app near 30k. This pure ASGI
middleware answers the requests whose query string it can validate exactly,
with the same function and therefore the same bytes as the FastAPI route, and
hands everything else to FastAPI untouched: any other path or method, a
percent-encoded or repeated parameter, an unknown parameter, a value outside
the strict forms below. So FastAPI still owns every 422, the OpenAPI schema
and the documented behaviour; the fast path only skips work. ``/health``
(without a query string) takes the same path: load balancers poll it, and as
the benchmark's ceiling it should cost what the cheapest response costs.

Accepted forms (any order, each at most once): ``customer_id=[1-9][0-9]*``
(at most 2**63-1), ``limit=[1-9][0-9]*`` (at most ``max_limit``),
``run_date=YYYY-MM-DD`` (a real date).

Examples
--------
>>> parse_query(b"customer_id=42&limit=3", max_id=2**63 - 1, max_limit=100)
(42, None, 3)
>>> parse_query(b"customer_id=042", max_id=2**63 - 1, max_limit=100) is None  # FastAPI decides
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

_ID = re.compile(rb"[1-9][0-9]{0,18}")
_LIMIT = re.compile(rb"[1-9][0-9]{0,5}")
_DATE = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}")

Answer = Callable[[int, "date | None", "int | None"], "tuple[int, bytes]"]
Health = Callable[[], "tuple[int, bytes]"]


def parse_query(query: bytes, max_id: int, max_limit: int) -> tuple[int, date | None, int | None] | None:
    """``(customer_id, run_date, limit)`` if ``query`` is in the strict accepted form, else None."""
    customer_id = run_date = limit = None
    for part in query.split(b"&"):
        name, sep, value = part.partition(b"=")
        if not sep:
            return None
        if name == b"customer_id" and customer_id is None:
            if not _ID.fullmatch(value):
                return None
            customer_id = int(value)
            if customer_id > max_id:
                return None
        elif name == b"limit" and limit is None:
            if not _LIMIT.fullmatch(value):
                return None
            limit = int(value)
            if limit > max_limit:
                return None
        elif name == b"run_date" and run_date is None:
            if not _DATE.fullmatch(value):
                return None
            try:
                run_date = date.fromisoformat(value.decode())
            except ValueError:
                return None
        else:
            return None
    if customer_id is None:
        return None
    return customer_id, run_date, limit


class FastPath:
    """Pure ASGI middleware answering plain ``GET /recommendations`` and ``GET /health``.

    Parameters
    ----------
    app : ASGI app
        The FastAPI app's inner stack, which gets every request not handled here.
    answer : callable
        ``answer(customer_id, run_date, limit) -> (status, json_bytes)``: the same
        function the FastAPI route uses.
    health : callable
        ``health() -> (status, json_bytes)``: the same function ``/health`` uses.
    max_id, max_limit : int
        The route's bounds; values beyond them go to FastAPI (which answers 422).
    """

    def __init__(self, app, answer: Answer, health: Health, max_id: int, max_limit: int):
        self.app = app
        self.answer = answer
        self.health = health
        self.max_id = max_id
        self.max_limit = max_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if path == "/recommendations":
                parsed = parse_query(scope["query_string"], self.max_id, self.max_limit)
                if parsed is not None:
                    return await _reply(send, *self.answer(*parsed))
            elif path == "/health" and not scope["query_string"]:
                return await _reply(send, *self.health())
        await self.app(scope, receive, send)


async def _reply(send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
