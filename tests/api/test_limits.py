"""Oversized requests are refused with 413 and a clear error, before anything is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import pytest
from httpx import Response

from api.limits import MAX_BODY_BYTES, MAX_QUERY_BYTES, body_limit
from api.routes.telematics import MAX_BODY_BYTES as POSITION_BODY_BYTES
from tests.api.service import Service
from tests.api.test_service import SHIFT

pytestmark = pytest.mark.security

ORDER = {"id": "o1", "location": {"lat": 60.17, "lon": 24.94}, "demand": [1]}


def _padded(body: Mapping[str, object], size: int) -> bytes:
    """The body's JSON padded with trailing whitespace to exactly ``size`` bytes."""
    data = json.dumps(body).encode()
    assert len(data) <= size
    return data + b" " * (size - len(data))


def _too_large(response: Response, limit: int) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert str(limit) in error["message"]
    assert error["problems"] == []


def _json_headers(service: Service) -> dict[str, str]:
    return {**service.headers(), "Content-Type": "application/json"}


def test_order_at_the_limit_is_taken_one_byte_more_is_refused(service: Service) -> None:
    """POST /v1/orders: a body of exactly MAX_BODY_BYTES is an order; one byte more is a
    413 naming the limit, and no order is stored."""
    h = _json_headers(service)
    r = service.client.post(
        "/v1/orders", content=_padded({**ORDER, "id": "big"}, MAX_BODY_BYTES + 1), headers=h
    )
    _too_large(r, MAX_BODY_BYTES)
    assert service.client.get("/v1/orders/big", headers=h).status_code == 404
    r = service.client.post("/v1/orders", content=_padded(ORDER, MAX_BODY_BYTES), headers=h)
    assert r.status_code == 201, r.text


def test_a_streamed_body_without_length_is_cut_at_the_limit(service: Service) -> None:
    """No Content-Length (chunked): the bytes are counted as they come and refused past
    the limit, with the same error."""
    body = _padded({**ORDER, "id": "streamed"}, MAX_BODY_BYTES + 10)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    h = _json_headers(service)
    r = service.client.post("/v1/orders", content=chunks(), headers=h)
    _too_large(r, MAX_BODY_BYTES)
    assert service.client.get("/v1/orders/streamed", headers=h).status_code == 404


def test_positions_over_their_limit_are_refused(service: Service) -> None:
    """POST /v1/vehicles/{id}/positions keeps its own, tighter limit (16 KiB), and the
    service-wide one stops a huge body before the route reads it all."""
    h = _json_headers(service)
    depot = {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}
    assert service.client.post("/v1/depots", json=depot, headers=h).status_code == 201
    vehicle = {"id": "v1", "depot_id": "d1", "shift": SHIFT}
    assert service.client.post("/v1/vehicles", json=vehicle, headers=h).status_code == 201
    fix = {"lat": 60.17, "lon": 24.94, "time": "2026-06-10T10:00:00Z"}
    url = "/v1/vehicles/v1/positions"
    r = service.client.post(url, content=_padded(fix, POSITION_BODY_BYTES + 1), headers=h)
    _too_large(r, POSITION_BODY_BYTES)
    r = service.client.post(url, content=_padded(fix, MAX_BODY_BYTES + 1), headers=h)
    _too_large(r, MAX_BODY_BYTES)


def test_osmand_query_and_body_over_the_limit_are_refused(service: Service) -> None:
    """/osmand: a query string over MAX_QUERY_BYTES and a body over 16 KiB are 413s."""
    fields = {"id": "dev-1", "lat": "60.17", "lon": "24.94", "x": "9" * MAX_QUERY_BYTES}
    _too_large(service.client.get("/osmand", params=fields), MAX_QUERY_BYTES)
    _too_large(service.client.post("/osmand", params=fields), MAX_QUERY_BYTES)
    body = "id=dev-1&lat=60.17&lon=24.94&pad=" + "9" * POSITION_BODY_BYTES
    r = service.client.post(
        "/osmand", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _too_large(r, POSITION_BODY_BYTES)
    # Under the limits: an answer about the fix (an unknown device), not about its size.
    r = service.client.get("/osmand", params={"id": "dev-1", "lat": "60.17", "lon": "24.94"})
    assert r.status_code == 400
    assert r.json()["reason"] == "unknown_device"


def test_a_planning_job_may_carry_a_larger_body(service: Service) -> None:
    """POST /v1/plans takes a VROOM problem inline: a body over the default limit is judged
    on its content (here 422: an unknown field), not refused for its size."""
    assert body_limit("POST", "/v1/plans") > MAX_BODY_BYTES
    assert body_limit("POST", "/v1/plans/") > MAX_BODY_BYTES
    assert body_limit("POST", "/v1/plans/p1/insert") == MAX_BODY_BYTES
    assert body_limit("POST", "/v1/plansx") == MAX_BODY_BYTES
    assert body_limit("PUT", "/v1/orders/o1/preferences") == MAX_BODY_BYTES
    h = _json_headers(service)
    r = service.client.post(
        "/v1/plans", content=_padded({"pad": "x"}, 2 * MAX_BODY_BYTES), headers=h
    )
    assert r.status_code == 422, r.text[:300]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/v1/orders/a%00b", None, "path"),
        ("GET", "/v1/vehicles/a%00b/progress", None, "path"),
        ("GET", "/v1/support/lookup?q=a%00b", None, "query"),
        ("GET", "/osmand?id=dev%00&lat=60.17&lon=24.94", None, "query"),
        ("POST", "/v1/orders", {**ORDER, "id": "a\u0000b"}, "id"),
        ("POST", "/v1/orders", {**ORDER, "contact": {"name": "\u0000"}}, "contact.name"),
        ("POST", "/v1/plans", {"vroom": {"jobs": [{"id": 1, "description": "\u0000"}]}}, "vroom"),
        ("POST", "/osmand", "id=dev-1&lat=60.17&lon=24.94&x=%00", "body"),
        ("POST", "/dashboard/login", "key=lm_%00", "body"),
    ],
)
def test_nul_characters_are_refused_before_the_database(
    service: Service, method: str, path: str, body: object, field: str
) -> None:
    """PostgreSQL text cannot hold U+0000 (a 500 there before): in a path, a query, a form
    or a JSON body it is a 422 naming where, on SQLite and PostgreSQL alike."""
    h = service.headers()
    if isinstance(body, str):
        h["Content-Type"] = "application/x-www-form-urlencoded"
        r = service.client.request(method, path, content=body, headers=h)
    else:
        r = service.client.request(method, path, json=body, headers=h)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert field in [p["field"] for p in error["problems"]]
    assert service.client.get("/v1/orders", headers=h).json() == []
