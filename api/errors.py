"""One error shape everywhere:
``{"error": {"code", "message", "problems": [{"field", "message"}]}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import ValidationError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status and code; raise it from a route."""

    def __init__(
        self, status: int, code: str, message: str, problems: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems or []


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {kind} {ident!r}")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def _body(code: str, message: str, problems: list[dict[str, str]]) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "problems": problems}}


def database_error(exc: OperationalError) -> tuple[str, str]:
    """(code, message) for a database that cannot take the request now: SQLite locked by
    another writer past the busy timeout, SQLite's disk full, or the server unreachable."""
    text = str(exc.orig).lower()
    if "is locked" in text or "busy" in text:
        return "database_busy", (
            "the database is busy (another writer holds its lock): nothing was written; try again"
        )
    if "disk is full" in text or "no space left" in text:
        return "database_full", "the database's disk is full: nothing was written"
    return "database_unavailable", "the database is unavailable; try again"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.code, exc.message, exc.problems), status_code=exc.status)

    @app.exception_handler(ValidationError)
    async def _domain_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        problems = [{"field": p.field, "message": p.message} for p in exc.problems]
        return JSONResponse(_body("invalid", "the input has problems", problems), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
                "message": str(err.get("msg", "invalid")),
            }
            for err in exc.errors()
        ]
        return JSONResponse(_body("invalid", "the input has problems", problems), status_code=422)

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> JSONResponse:
        # A 503 the client can retry, not a stack trace; the log keeps the driver's reason
        # (statement parameters are hidden by the engine).
        code, message = database_error(exc)
        reason = (str(exc.orig).strip().splitlines() or [""])[0][:200]
        log.warning("%s %s: %s (%s)", request.method, request.url.path, code, reason)
        return JSONResponse(_body(code, message, []), status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            _body(code.get(exc.status_code, "error"), str(exc.detail), []),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
