"""One error shape everywhere:
``{"error": {"code", "message", "problems": [{"field", "message"}]}}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import ValidationError


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

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            _body(code.get(exc.status_code, "error"), str(exc.detail), []),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
