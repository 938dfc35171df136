"""Interactive API docs served from this process, so they work without internet.

FastAPI's default ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc
from a CDN: on a machine without internet they stay blank. Following
FastAPI's "Self-hosting JavaScript and CSS for docs", the pages here point at
``/docs-assets/``, served from the files the ``fastapi-offline`` package ships
(Swagger UI 5, which renders OpenAPI 3.1, and ReDoc; MIT/Apache-2.0). We use
only its static files, not its app factory. ``swagger-ui-bundle`` was the
other candidate; it ships Swagger UI 4, which cannot render OpenAPI 3.1.
ReDoc's Google fonts and Swagger UI's online validator badge are turned off.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def assets_folder() -> Path:
    """The folder of Swagger UI and ReDoc files installed with ``fastapi-offline``."""
    return Path(str(files("fastapi_offline") / "static"))


def add_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve ``docs_url`` (Swagger UI) and ``redoc_url`` (ReDoc) with local assets.

    ``app`` must be built with ``docs_url=None, redoc_url=None`` (no CDN pages).
    """
    app.mount(ASSETS, StaticFiles(directory=assets_folder()), name="docs-assets")

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = base(request)
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # FastAPI's defaults plus no online validator badge (an image from validator.swagger.io).
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = base(request)
        return get_redoc_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
