"""Request and response bodies of the drivers' web app API (issue 20): the vehicle's stops
and the actions its driver takes. The app is written against these shapes; keep them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, ValidationInfo, field_validator

from api.driver_mqtt import MqttOut
from api.proof_images import (
    PHOTO_MAX_BYTES,
    PHOTO_TYPES,
    SIGNATURE_MAX_BYTES,
    SIGNATURE_TYPES,
    decode_image,
)
from api.schemas import Strict

StopStatus = Literal["pending", "arrived", "delivered", "failed", "skipped"]
ActionKind = Literal["arrived", "delivered", "failed"]
FailReason = Literal["not_home", "refused", "address_not_found", "access"]


class ActionIn(Strict):
    """What the driver pressed, sent by the phone (again, with the same ``action_id``, when
    it is not sure the first try arrived)."""

    action_id: str = Field(
        pattern=r"^[A-Za-z0-9-]{8,64}$",
        description="Made by the phone (a UUID): the same action sent again is stored once.",
        examples=["6f1c2a7e-9a51-4f7e-8f55-0d8c2b7e4c11"],
    )
    order_id: str = Field(min_length=1, max_length=100)
    kind: ActionKind
    reason: FailReason | None = Field(
        None, validate_default=True, description="Why it failed: required for failed, else null."
    )
    recipient_name: str | None = Field(None, max_length=120, description="Who took the parcel.")
    at: AwareDatetime = Field(description="When the driver pressed, by the phone's clock.")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    accuracy_m: float | None = Field(None, ge=0, le=100_000)
    photo: str | None = Field(
        None,
        description=f"data:image/jpeg|png|webp;base64,... at most {PHOTO_MAX_BYTES} bytes "
        "decoded; judged by its content.",
    )
    signature: str | None = Field(
        None, description=f"data:image/png;base64,... at most {SIGNATURE_MAX_BYTES} bytes decoded."
    )

    @field_validator("reason")
    @classmethod
    def _reason_for_failed_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind == "failed" and value is None:
            raise ValueError("required when kind is failed")
        if kind in ("arrived", "delivered") and value is not None:
            raise ValueError("only for kind failed")
        return value

    @field_validator("lon")
    @classmethod
    def _both_or_neither(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "lat" in info.data and (info.data["lat"] is None) != (value is None):
            raise ValueError("lat and lon go together")
        return value

    @field_validator("photo")
    @classmethod
    def _photo(cls, value: str | None) -> str | None:
        if value is not None:
            decode_image(value, PHOTO_TYPES, PHOTO_MAX_BYTES)
        return value

    @field_validator("signature")
    @classmethod
    def _signature(cls, value: str | None) -> str | None:
        if value is not None:
            decode_image(value, SIGNATURE_TYPES, SIGNATURE_MAX_BYTES)
        return value


class ActionOut(BaseModel):
    action_id: str
    order_id: str
    status: ActionKind = Field(description="The stop's status the action set.")


class StopWindowOut(BaseModel):
    start: datetime
    end: datetime


class StopProofOut(BaseModel):
    kind: Literal["delivered", "failed"]
    at: datetime
    recipient_name: str
    reason: str
    has_photo: bool
    has_signature: bool


class StopOut(BaseModel):
    order_id: str
    sequence: int = Field(description="The stop's place on the route, from 1.")
    status: StopStatus
    lat: float
    lon: float
    address: str
    contact_name: str
    call: str | None = Field(
        description="tel: URL of the customer, or of the organisation's support when it hides "
        "customers' numbers from drivers (null: neither)."
    )
    window: StopWindowOut | None = Field(
        description="The window the customer was told, else the order's planned one."
    )
    eta: datetime | None = Field(description="Live, while the vehicle reports positions.")
    service_s: int
    instructions: dict[str, str] = Field(
        description="The customer's: safe_place, notes, access_code (each only when given)."
    )
    proof: StopProofOut | None


class StopsOut(BaseModel):
    vehicle_id: str
    plan_id: str | None
    route_version: str = Field(
        description="Changes whenever the stops, their order, status or instructions change."
    )
    language: str
    support_phone: str | None
    geometry: dict[str, Any] | None = Field(description="GeoJSON LineString of the route.")
    stops: list[StopOut]
    mqtt: MqttOut | None = Field(None, description="Fixes over MQTT; null: over HTTP.")
