"""Strict input types: what the API accepts as an id, a limit, a date and a JSON body.

Pydantic's lax mode would take ``customer_id=+5``, ``1_000`` or `` 5 `` as 5,
a unix time as a ``run_date``, and ``true`` or ``"5"`` as an id in a JSON
body. Here an id or limit in the query string is canonical decimal
(``-?(0|[1-9][0-9]*)``: the range checks then name the bound), a date is
``YYYY-MM-DD``, and an id in a JSON body is a JSON number without a fraction
(``42``, or ``42.0``, which JSON Schema's ``integer`` in the OpenAPI contract includes). JSON has no NaN or
Infinity and no number beyond a double's range, so :class:`StrictJsonRoute`
refuses ``NaN``, ``Infinity`` and ``1e400`` as invalid JSON (422) instead of
letting Python's ``json`` turn them into floats the error response could not
even render (the 500 of issue 13). These are the forms the fast path
(:mod:`api.fastpath`) accepts, so both paths agree.

Examples
--------
>>> from pydantic import TypeAdapter
>>> TypeAdapter(query_int(1, 100)).validate_python("42")
42
>>> from pydantic import ValidationError
>>> try:
...     TypeAdapter(query_int(1, 100)).validate_python("+5")
... except ValidationError as exc:
...     print(exc.errors()[0]["msg"])
Input should be a whole number in plain decimal digits, like 42
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _canonical_int(value: Any) -> Any:
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise PydanticCustomError("int_parsing", "Input should be a whole number in plain decimal digits, like 42")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise PydanticCustomError("date_parsing", "Input should be a date as YYYY-MM-DD, like 2026-02-11")
    return value


def query_int(ge: int, le: int):
    """An integer from the query string in ``[ge, le]``: canonical decimal text only.

    The bounds sit inside, before the text check, so the OpenAPI schema keeps its minimum and maximum.
    """
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_canonical_int)]

QueryDate = Annotated[date, BeforeValidator(_iso_date)]
"""A date from the query string: ``YYYY-MM-DD`` only (no unix times, no datetimes)."""

def _json_int(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise PydanticCustomError("int_type", "Input should be a JSON number that is a whole number, like 42")
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON Schema's "integer" includes 42.0, and the OpenAPI schema is the contract
    return value


def json_int(ge: int, le: int):
    """An integer in ``[ge, le]`` in a JSON body: a JSON number without a fraction (not true, "5" or 1.5)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_json_int)]


class _NotJson(ValueError):
    def __init__(self, token: str):
        super().__init__(token)
        self.token = token


def _constant(token: str) -> float:
    raise _NotJson(token)  # NaN, Infinity, -Infinity: Python's json accepts them, JSON does not


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotJson(text)  # 1e400: beyond any double
    return number


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses what RFC 8259 refuses: NaN, Infinity, and numbers that overflow a double.

    Raises
    ------
    json.JSONDecodeError
        Naming the offending token and its position.

    Examples
    --------
    >>> loads_strict("[1, 2.5]")
    [1, 2.5]
    >>> loads_strict("[1, NaN]")
    Traceback (most recent call last):
    ...
    json.decoder.JSONDecodeError: NaN is not a JSON number (ids are whole numbers like 42): line 1 column 5 (char 4)
    """
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_finite_float)
    except _NotJson as exc:
        doc = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        raise json.JSONDecodeError(
            f"{exc.token} is not a JSON number (ids are whole numbers like 42)", doc, max(doc.find(exc.token), 0)
        ) from None


class StrictJsonRequest(Request):
    """A request whose ``json()`` is :func:`loads_strict`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Routes whose JSON bodies are parsed by :func:`loads_strict` (FastAPI's documented custom-route hook)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler

