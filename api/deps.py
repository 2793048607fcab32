"""Typed dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Caller, require
from api.errors import ApiError, not_found


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session, session.begin():
        yield session


#: Committed when the route returns and *before* the response is sent (``scope="function"``):
#: a commit that fails (SQLite locked or its disk full, PostgreSQL gone) is the client's error
#: answer, never a 201 for a row that was not written.
SessionDep = Annotated[Session, Depends(_session, scope="function")]


def service_now(request: Request) -> datetime:
    """The service's time: the wall clock, or the simulated one the demo runs on (one clock
    for the routes, the ingester and the sender, so a sped-up day stays consistent)."""
    return state_now(request.app.state)


def state_now(state: Any) -> datetime:
    """The service's time from the app's state (for work outside a request: pollers)."""
    clock = getattr(state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


Now = Annotated[datetime, Depends(service_now)]
Dispatcher = Annotated[Caller, Depends(require("dispatcher"))]
Reader = Annotated[Caller, Depends(require("dispatcher", "support"))]
Admin = Annotated[Caller, Depends(require("admin"))]

PlanId = Annotated[str, Path(description="The plan's id, as returned by POST /v1/plans.")]
OrderId = Annotated[str, Path(description="Your id for the order.")]
VehicleId = Annotated[str, Path(description="Your id for the vehicle.")]


def _for_vehicle(
    vehicle_id: VehicleId, caller: Annotated[Caller, Depends(require("device", "dispatcher"))]
) -> Caller:
    """The caller, acting for the path's vehicle: a device key only for the vehicle it is
    bound to (403 before the vehicle is even looked up: a device learns nothing of others)."""
    if caller.role == "device" and caller.vehicle != vehicle_id:
        if caller.vehicle is None:
            raise ApiError(
                403,
                "forbidden",
                "this device key names no vehicle: create one that does (POST /v1/keys with "
                "role device and vehicle_id)",
            )
        raise ApiError(403, "forbidden", f"this device key is for vehicle {caller.vehicle!r} only")
    return caller


#: Routes on one vehicle (``{vehicle_id}`` in the path) that its device may call: the
#: vehicle's own device key, dispatchers, admins.
VehicleDevice = Annotated[Caller, Depends(_for_vehicle)]


def owned(session: Session, model: Any, organisation_id: str, external_id: str, kind: str) -> Any:
    """The caller's record of ``model`` with this external id, or a 404 naming it."""
    row = session.scalar(
        select(model).where(
            model.organisation_id == organisation_id, model.external_id == external_id
        )
    )
    if row is None:
        raise not_found(kind, external_id)
    return row
