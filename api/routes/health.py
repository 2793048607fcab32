"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import socket

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from store.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers.")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database (and the broker, if set) answer.")
def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        ping(request.app.state.engine)
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    mqtt = getattr(request.app.state, "mqtt", None)
    if mqtt is not None:
        try:
            socket.create_connection((mqtt.broker.host, mqtt.broker.port), timeout=1).close()
            checks["broker"] = "ok" if mqtt.connected.is_set() else "not connected yet"
        except OSError as exc:
            checks["broker"] = f"unreachable: {exc}"
    unavailable = getattr(request.app.state, "mqtt_unavailable", None)
    if unavailable:
        checks["broker"] = f"none (HTTP ingestion only): {unavailable}"
    ready = all(v == "ok" or v.startswith("none") for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
