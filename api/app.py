"""The recommendations API: FastAPI over the serving snapshot, nothing else.

Run it with ``make serve`` (uvicorn on 127.0.0.1:8000); ``METRO_SERVING``
names the snapshot. The process never opens the warehouse: the daily pipeline
publishes a new snapshot file atomically and :class:`api.store.SnapshotStore`
swaps it in without a restart.

Endpoints
---------
``GET /health``
    The snapshot served (run dates, model version, rows, age) and ``ok`` or ``degraded``
    with the reasons (a failed reload, a snapshot behind the committed recommendations);
    503 before one exists.
``GET /recommendations?customer_id=&run_date=&limit=``
    A customer's ranked offers; ``run_date`` defaults to the newest run date served.
``GET /recommendations/batch?customer_ids=1&customer_ids=2`` and ``POST`` with a JSON list
    Up to ``METRO_API_MAX_BATCH`` customers at once; unknown ones are listed, not errors.

Examples
--------
>>> from pathlib import Path
>>> from api.settings import ApiSettings
>>> app = create_app(ApiSettings(serving=Path("no/such/serving.parquet")))
>>> sorted(r.path for r in app.routes if r.path.startswith("/rec"))
['/recommendations', '/recommendations/batch', '/recommendations/batch']
"""

# No `from __future__ import annotations`: FastAPI must see the closures (settings.max_batch) in the signatures.

import gc
import json
import logging
import sys
from contextlib import asynccontextmanager
from datetime import date, datetime, timezone
from typing import Annotated

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.docs import add_docs
from api.fastpath import FastPath
from api.inputs import QueryDate, StrictJsonRoute, json_int, query_int
from api.models import BatchResponse, Health, Problem, RecommendationResponse, Unavailable
from api.settings import ApiSettings, SettingError, load_api_settings
from api.store import ServedDay, Snapshot, SnapshotStore

MAX_ID = 2**63 - 1  # ids are BIGINT in the snapshot
MAX_LIMIT = 100

# Strict forms (api/inputs.py): canonical decimal ids and limits, ISO dates, whole JSON numbers in bodies.
CustomerId = query_int(1, MAX_ID)
BodyCustomerId = json_int(1, MAX_ID)
RunDate = Annotated[
    QueryDate | None,
    Query(description="Run date (YYYY-MM-DD); default: the newest run date served, not today's date"),
]
Limit = Annotated[
    query_int(1, MAX_LIMIT) | None,
    Query(description="At most this many offers per customer (best first); default: all served"),
]

DESCRIPTION = """Personalized offers for Metro customers, precomputed by the daily pipeline.

The service reads only the serving snapshot (`METRO_SERVING`) and swaps in a newly
published one without a restart. Errors: 422 for malformed input, 404 naming an
unknown customer or a run date not served, 503 until a snapshot exists."""


def _setup_logging() -> None:
    # uvicorn configures only its own loggers; give ours a handler so reloads show up in the server log.
    logger = logging.getLogger("api")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _json(text: str, status_code: int = 200) -> Response:
    return Response(content=text.encode(), status_code=status_code, media_type="application/json")


def _dumps(body: dict) -> bytes:
    """JSON exactly as Starlette's JSONResponse renders it."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def create_app(
    settings: ApiSettings | None = None, store: SnapshotStore | None = None, freeze_gc: bool = True
) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment).

    The snapshot is loaded at startup (before the first request is accepted) and
    watched from then on; a missing file only makes the endpoints answer 503.
    ``freeze_gc`` moves everything alive after startup out of the cyclic garbage
    collector's reach (``gc.freeze``): right for a server process, not for a
    test process that embeds the app.
    """
    settings = settings or load_api_settings()
    store = store or SnapshotStore(settings.serving, settings.reload_seconds)
    _setup_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store.refresh()
        # Everything alive now (FastAPI, Pydantic, the first snapshot) lives as long as the process: keep it
        # out of the garbage collector's full passes, which otherwise stall requests for ~50-100 ms.
        if freeze_gc:
            gc.collect()
            gc.freeze()
        store.start()
        try:
            yield
        finally:
            store.stop()

    app = FastAPI(
        title="Metro Offers recommendations API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # add_docs serves both pages with local assets: FastAPI's load them from a CDN
        redoc_url=None,
    )
    add_docs(app)
    app.state.settings = settings
    app.state.store = store

    def unavailable_detail() -> str:
        # The file's name, never its folder: clients learn nothing about the server's paths.
        detail = f"no serving snapshot loaded yet (METRO_SERVING file {settings.serving.name})"
        return f"{detail}: {store.last_error}" if store.last_error else detail

    def served_day(snapshot: Snapshot | None, run_date: date | None) -> ServedDay:
        if snapshot is None:
            raise HTTPException(status_code=503, detail=unavailable_detail())
        if run_date is None:
            return snapshot.newest
        day = snapshot.days.get(run_date)
        if day is None:
            raise HTTPException(status_code=404, detail=not_served(snapshot, run_date))
        return day

    def not_served(snapshot: Snapshot, run_date: date) -> str:
        return f"run_date {run_date.isoformat()} is not served; served: {snapshot.describe_run_dates()}"

    def problem(status: int, detail: str) -> tuple[int, bytes]:
        return status, _dumps({"detail": detail})  # the bytes Starlette renders for HTTPException(status, detail)

    def answer(customer_id: int, run_date: date | None, limit: int | None) -> tuple[int, bytes]:
        """Status and JSON body of ``GET /recommendations``: shared by the route and the fast path."""
        snapshot = store.current  # read the reference once: one snapshot for the whole request
        if snapshot is None:
            return problem(503, unavailable_detail())
        if run_date is None:
            day = snapshot.newest
        else:
            day = snapshot.days.get(run_date)
            if day is None:
                return problem(404, not_served(snapshot, run_date))
        body = day.customer_json(customer_id, limit)
        if body is None:
            return problem(404, f"customer {customer_id} has no recommendations on {day.run_date.isoformat()}")
        return 200, body.encode()

    # These never come from the API itself but from the server before routing (api/server.py).
    unparsable = {
        400: {"description": "The HTTP server could not parse the request"},
        408: {"description": "The request did not arrive whole within METRO_API_READ_TIMEOUT_SECONDS"},
        431: {"description": "The request head is over METRO_API_MAX_HEADER_KB"},
    }
    errors = {**unparsable, 404: {"model": Problem}, 503: {"model": Problem}}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers 400 for a JSON body it cannot even decode (e.g. not UTF-8); it is malformed input: 422.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            detail = [{"type": "json_invalid", "loc": ["body"], "msg": "Body is not valid JSON text", "input": None}]
            return JSONResponse({"detail": detail}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's handler, but a body that is not JSON says why in "msg" (e.g. "NaN is not a JSON number").
        errors = jsonable_encoder(exc.errors())
        for error in errors:
            if error.get("type") == "json_invalid" and isinstance(error.get("ctx"), dict) and "error" in error["ctx"]:
                error["msg"] = f"Body is not valid JSON: {error['ctx']['error']}"
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get(
        "/health",
        response_model=Health,
        responses={**unparsable, 503: {"model": Unavailable}},
        summary="The snapshot being served",
    )
    async def health() -> Response:
        status, body = health_reply()
        return Response(content=body, status_code=status, media_type="application/json")

    def health_reply() -> tuple[int, bytes]:
        """Status and JSON body of ``GET /health``: shared by the route and the fast path."""
        snapshot = store.current
        if snapshot is None:
            body = {"status": "unavailable", "detail": unavailable_detail(), "last_reload_error": store.last_error}
            return 503, _dumps(body)
        newest = snapshot.newest
        now = datetime.now(timezone.utc)
        published = snapshot.published_at
        committed = store.committed
        reasons = []
        if store.last_error:
            reasons.append(f"the last reload failed: {store.last_error}")
        if committed is not None and committed > newest.run_date:
            reasons.append(
                f"the snapshot lags the pipeline: recommendations are committed through {committed.isoformat()} "
                f"but the snapshot serves through {newest.run_date.isoformat()} (not published yet, or publishing failed)"
            )
        if store.marker_error:
            reasons.append(f"cannot tell whether the snapshot is current: {store.marker_error}")
        body = {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "run_dates": [d.isoformat() for d in snapshot.run_dates],
            "newest_run_date": newest.run_date.isoformat(),
            "model_version": newest.model_version,
            "rows": snapshot.rows,
            "customers": len(newest.index),
            "published_at": published.isoformat() if published else None,
            "age_seconds": round((now - published).total_seconds(), 3) if published else None,
            "loaded_at": snapshot.loaded_at.isoformat(),
            "last_reload_error": store.last_error,
            "committed_run_date": committed.isoformat() if committed else None,
        }
        return 200, _dumps(body)  # degraded still serves: a balancer must not drop every replica at once

    @app.get(
        "/recommendations",
        response_model=RecommendationResponse,
        responses=errors,
        summary="A customer's ranked offers",
    )
    async def recommendations(
        customer_id: Annotated[CustomerId, Query(description="Customer id")],
        run_date: RunDate = None,
        limit: Limit = None,
    ) -> Response:
        status, body = answer(customer_id, run_date, limit)
        return Response(content=body, status_code=status, media_type="application/json")

    def batch(customer_ids: list[int], run_date: date | None, limit: int | None) -> Response:
        day = served_day(store.current, run_date)
        found, missing = [], []
        for customer_id in dict.fromkeys(customer_ids):  # de-duplicated, request order kept
            body = day.customer_json(customer_id, limit)
            if body is None:
                missing.append(str(customer_id))
            else:
                found.append(body)
        return _json(
            f'{{"run_date":"{day.run_date.isoformat()}","model_version":{json.dumps(day.model_version)},'
            f'"customers":[{",".join(found)}],"missing_customer_ids":[{",".join(missing)}]}}'
        )

    batch_ids = f"Customer ids, 1 to {settings.max_batch} (METRO_API_MAX_BATCH); duplicates are answered once"

    @app.get(
        "/recommendations/batch",
        response_model=BatchResponse,
        responses=errors,
        summary="Offers for many customers (ids in the query string)",
    )
    async def recommendations_batch(
        customer_ids: Annotated[
            list[CustomerId], Query(min_length=1, max_length=settings.max_batch, description=batch_ids)
        ],
        run_date: RunDate = None,
        limit: Limit = None,
    ) -> Response:
        return batch(customer_ids, run_date, limit)

    async def recommendations_batch_post(
        customer_ids: Annotated[
            list[BodyCustomerId], Body(min_length=1, max_length=settings.max_batch, description=batch_ids)
        ],
        run_date: RunDate = None,
        limit: Limit = None,
    ) -> Response:
        return batch(customer_ids, run_date, limit)

    # The one route with a JSON body parses it strictly (no NaN, Infinity or 1e400): see api/inputs.py.
    app.router.add_api_route(
        "/recommendations/batch",
        recommendations_batch_post,
        methods=["POST"],
        response_model=BatchResponse,
        responses={**errors, 413: {"model": Problem, "description": "Body too large"}},
        summary="Offers for many customers (ids as a JSON list in the body)",
        max_body_size=64 * settings.max_batch + 4096,  # room for pretty-printed ids; refuses abuse early
        route_class_override=StrictJsonRoute,
    )

    if settings.fast_path:
        app.add_middleware(FastPath, answer=answer, health=health_reply, max_id=MAX_ID, max_limit=MAX_LIMIT)
    return app


try:
    app = create_app()
except SettingError as exc:  # one clear line instead of a traceback
    raise SystemExit(f"metro-offers api: {exc}") from None
