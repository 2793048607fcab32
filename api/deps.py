"""Typed dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from api.auth import Caller, require


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(_session)]
Dispatcher = Annotated[Caller, Depends(require("dispatcher"))]
Reader = Annotated[Caller, Depends(require("dispatcher", "support"))]
Admin = Annotated[Caller, Depends(require("admin"))]

PlanId = Annotated[str, Path(description="The plan's id, as returned by POST /v1/plans.")]
OrderId = Annotated[str, Path(description="Your id for the order.")]
VehicleId = Annotated[str, Path(description="Your id for the vehicle.")]
