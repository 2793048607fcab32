"""Request and response bodies of the HTTP API (pydantic). Domain types stay separate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["dispatcher", "device", "support", "admin"]
NonNegative = Annotated[int, Field(ge=0)]

EXAMPLE_START = "2026-11-26T08:00:00+02:00"
EXAMPLE_END = "2026-11-26T18:00:00+02:00"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """PostgreSQL text cannot hold NUL: refused here (a 422), not by the database."""
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if "\x00" in item:
                    raise ValueError("must not contain NUL characters")
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list | tuple | set | frozenset):
                stack.extend(item)
        return value


class LatLonIn(Strict):
    lat: float = Field(ge=-90, le=90, description="Latitude, WGS84 degrees.", examples=[60.1699])
    lon: float = Field(ge=-180, le=180, description="Longitude, WGS84 degrees.", examples=[24.9384])


class WindowIn(Strict):
    start: AwareDatetime = Field(
        description="Start, with its UTC offset.", examples=[EXAMPLE_START]
    )
    end: AwareDatetime = Field(description="End, with its UTC offset.", examples=[EXAMPLE_END])

    @model_validator(mode="after")
    def _ordered(self) -> WindowIn:
        if self.end < self.start:
            raise ValueError("the window ends before it starts")
        return self


class ProblemOut(BaseModel):
    field: str = Field(description="Dotted path of the offending input.")
    message: str


class ErrorOut(BaseModel):
    code: str = Field(description="Machine-readable kind: invalid, not_found, conflict, ...")
    message: str
    problems: list[ProblemOut] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorOut


class KeyCreate(Strict):
    name: str = Field("", max_length=200, description="What the key is for.")
    role: Role = Field(description="What the key may do.")
    vehicle_id: str | None = Field(
        None,
        max_length=100,
        description="Required for the device role, refused for the others: your id for the "
        "one vehicle the key reports for (positions and driver events of any other vehicle "
        "get 403).",
    )


class KeyCreated(BaseModel):
    id: str
    name: str
    role: Role
    vehicle_id: str | None = Field(None, description="A device key's vehicle.")
    key: str = Field(description="The key itself, shown only now. Send it as a Bearer token.")


class KeyPublic(BaseModel):
    id: str
    name: str
    role: Role
    vehicle_id: str | None = Field(None, description="A device key's vehicle.")
    prefix: str
    created_at: datetime
    revoked: bool


class DepotCreate(Strict):
    id: str = Field(min_length=1, max_length=100, description="Your id for the depot.")
    name: str = Field("", max_length=200)
    location: LatLonIn


class DepotPublic(BaseModel):
    id: str
    name: str
    location: LatLonIn


class BreakIn(Strict):
    duration_s: int = Field(gt=0, le=86_400, description="Length of the break in seconds.")
    window: WindowIn = Field(description="When the break may start.")


class VehicleCreate(Strict):
    id: str = Field(min_length=1, max_length=100, description="Your id for the vehicle.")
    depot_id: str | None = Field(None, description="Start (and end) at this depot.")
    start: LatLonIn | None = Field(None, description="Start here instead of a depot.")
    end: LatLonIn | None = Field(None, description="End here instead of the start.")
    open_route: bool = Field(False, description="The day ends at the last stop.")
    shift: WindowIn
    capacity: list[NonNegative] = Field(
        default_factory=list, description="Per dimension, e.g. [parcels, kg]."
    )
    skills: list[str] = Field(default_factory=list, examples=[["fridge"]])
    max_duration_s: int | None = Field(None, gt=0)
    max_distance_m: int | None = Field(None, gt=0)
    fixed_cost: float = Field(0, ge=0, description="Cost of using the vehicle at all.")
    cost_per_hour: float = Field(0, ge=0)
    cost_per_km: float = Field(0, ge=0)
    breaks: list[BreakIn] = Field(default_factory=list)
    driver_first_name: str = Field("", max_length=100, description="Shown to customers.")


class VehiclePublic(BaseModel):
    id: str
    start: LatLonIn
    end: LatLonIn | None
    shift: WindowIn
    capacity: list[int]
    skills: list[str]
    active_plan_id: str | None


class ContactIn(Strict):
    name: str = Field("", max_length=200)
    phone: str = Field("", max_length=50, examples=["+358401234567"])
    email: str = Field("", max_length=200, examples=["customer@example.com"])


class OrderCreate(Strict):
    id: str = Field(min_length=1, max_length=100, description="Your id for the order.")
    location: LatLonIn
    windows: list[WindowIn] = Field(default_factory=list, description="Empty: any time.")
    service_s: int = Field(0, ge=0, le=86_400, description="Time at the stop, seconds.")
    demand: list[NonNegative] = Field(default_factory=list, description="Per capacity dimension.")
    skills: list[str] = Field(default_factory=list)
    priority: int = Field(0, ge=0, le=100)
    optional: bool = False
    penalty: float | None = Field(None, ge=0, description="Cost of leaving an optional order out.")
    customer_ref: str = Field("", max_length=200)
    contact: ContactIn = Field(default_factory=ContactIn)
    language: str = Field("en", max_length=16, examples=["it"])
    timezone: str = Field("UTC", max_length=64, examples=["Europe/Helsinki"])
    channels: list[Literal["email", "sms", "whatsapp", "webhook", "push", "mqtt"]] = Field(
        default_factory=list,
        description="How the customer wants to be told, in order of preference (push: MQTT on "
        "customers/{tracking_token}/updates; mqtt is its older name). Empty: the "
        "organisation's default channels.",
    )
    opted_out: bool = Field(False, description="The customer wants no messages at all.")
    address: str = Field("", max_length=300, description="Where to deliver, for the driver.")

    @model_validator(mode="after")
    def _penalty_only_if_optional(self) -> OrderCreate:
        if self.penalty is not None and not self.optional:
            raise ValueError("only optional orders carry a penalty")
        return self


class OrderPreferences(Strict):
    """What the customer asked for: channels in order of preference, or no messages."""

    channels: list[Literal["email", "sms", "whatsapp", "webhook", "push", "mqtt"]] | None = None
    opted_out: bool | None = None


class OrderPublic(BaseModel):
    id: str
    location: LatLonIn
    windows: list[WindowIn]
    service_s: int
    demand: list[int]
    status: Literal["open", "planned", "dispatched", "cancelled", "delivered", "failed", "skipped"]
    customer_ref: str
    tracking_token: str = Field(description="For the customer's tracking link.")
    channels: list[str] = Field(default_factory=list)
    opted_out: bool = False
    address: str = ""


class PlanCreate(Strict):
    order_ids: list[str] | None = Field(None, description="Default: every open order.")
    vehicle_ids: list[str] | None = Field(None, description="Default: every vehicle.")
    time_limit_s: float | None = Field(None, gt=0, description="Solver time limit.")
    seed: int = 0
    vroom: dict[str, Any] | None = Field(
        None, description="A problem in VROOM's JSON format instead of stored orders."
    )


class ProgressPoint(BaseModel):
    elapsed_s: float
    cost: int


class PlanJobPublic(BaseModel):
    plan_id: str
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: list[ProgressPoint]


class PlanPublic(BaseModel):
    id: str
    kind: str
    status: str
    parent_plan_id: str | None
    created_at: datetime
    dispatched_at: datetime | None
    progress: list[ProgressPoint]
    plan: dict[str, Any] | None = Field(None, description="Routes, stops and unassigned orders.")
    error: str | None


class VehicleStateIn(Strict):
    vehicle_id: str
    position: LatLonIn
    done: list[str] = Field(default_factory=list, description="Orders served or failed.")
    next_order_id: str | None = Field(None, description="The stop it is driving to now.")
    on_board: list[str] = Field(default_factory=list, description="Orders loaded on it.")


class ReplanCreate(Strict):
    now: AwareDatetime | None = Field(None, description="Default: the server's clock.")
    vehicles: list[VehicleStateIn] = Field(default_factory=list)
    told_windows: dict[str, WindowIn] = Field(
        default_factory=dict, description="Windows already told to customers, by order id."
    )
    time_limit_s: float | None = Field(None, gt=0)


class InsertCreate(Strict):
    order_id: str = Field(description="A stored order to slot into the plan.")
    now: AwareDatetime | None = None
    told_windows: dict[str, WindowIn] = Field(default_factory=dict)


class Branding(Strict):
    """How customer messages look and who they come from (empty: unset)."""

    name: str = Field("", max_length=200, description="Shown to customers.")
    primary_colour: str = Field("#0b5fff", pattern=r"^#[0-9a-fA-F]{6}$")
    secondary_colour: str = Field("#f6f8fa", pattern=r"^#[0-9a-fA-F]{6}$")
    logo_url: str = Field("", max_length=500, description="An https:// URL, or empty.")
    sender_email: str = Field("", max_length=200, description="From: of customer e-mails.")
    sender_name: str = Field("", max_length=200)
    sms_sender: str = Field(
        "", max_length=15, description="SMS sender: up to 11 letters/digits, or a number."
    )
    sender: str = Field(
        "", max_length=200, description="Older name of sender_email (still accepted)."
    )
    driver_sees_phone: bool = Field(
        True, description="Drivers' app: call the customer (false: the support number instead)."
    )
    support_phone: str = Field(
        "",
        pattern=r"^(\+[1-9][0-9]{6,14})?$",
        description="The support number drivers call instead: E.164, or empty.",
        examples=["+358401234567"],
    )


class OrganisationPublic(BaseModel):
    id: str
    name: str
    timezone: str
    branding: Branding
    notification_policy: dict[str, Any]


class OrganisationUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, description="IANA zone.", examples=["Europe/Rome"])
    branding: Branding | None = None
    notification_policy: dict[str, Any] | None = Field(
        None,
        description="Which customer messages go out and when: enabled (triggers), "
        "stops_away_n, minutes_away_m, budget_per_order, min_interval_s, quiet_start and "
        "quiet_end (HH:MM in the customer's zone, or null), stale_after_s, "
        "final_stale_after_s, default_channels, webhook_url (the shop's endpoint for the "
        "webhook channel, on a public internet address, signed with the organisation's "
        "secrets as docs/webhooks.md says), first_window_cap_min (15-240, default 60: the "
        "widest first window a customer is told, docs/accuracy.md). Missing keys keep their "
        "defaults.",
        examples=[{"quiet_start": "21:00", "quiet_end": "08:00", "budget_per_order": 6}],
    )


class DriverEventIn(Strict):
    order_id: str
    kind: Literal["delivered", "failed", "skipped"]
    reason: str = Field("", max_length=500, description="Why it failed or was skipped.")
    at: AwareDatetime | None = Field(None, description="Default: now.")


class IngestOut(BaseModel):
    status: Literal["applied", "history", "rejected"]
    reason: str = ""


class StopProgressOut(BaseModel):
    order_id: str
    arrived_at: datetime | None
    departed_at: datetime | None
    inferred: bool
    passed: bool = Field(
        False, description="Left behind without an arrival: the vehicle moved on to later stops."
    )


class StopEtaOut(BaseModel):
    order_id: str
    eta: datetime = Field(description="Expected arrival (when arrived: the arrival).")
    earliest: datetime = Field(description="P10 of the arrival.")
    latest: datetime = Field(description="P90 of the arrival: about 80% arrive in between.")
    departure: datetime
    arrived: bool


class PaceOut(BaseModel):
    travel: float = Field(description="Actual / expected drive time today (1.2: 20% slower).")
    service: float = Field(description="Actual / expected time at stops today.")


class ProgressOut(BaseModel):
    vehicle_id: str
    plan_id: str | None
    fix_time: datetime | None
    lat: float | None
    lon: float | None
    along_m: float | None = Field(None, description="Distance driven along the active route.")
    on_route: bool | None
    next_stop: int | None
    stops: list[StopProgressOut]
    etas: list[StopEtaOut] = Field(
        default_factory=list, description="Every stop not yet left, in route order."
    )
    pace: PaceOut | None = None
    way_back: dict[str, Any] | None = Field(
        None,
        description="When off the route: the drive back to the next stop (duration_s, "
        "distance_m, GeoJSON LineString).",
    )
    silent_s: float | None = Field(None, description="Seconds since its last fix (null: none).")
    no_signal: bool = Field(False, description="Silent past the threshold, stops still ahead.")


class NotificationAttemptOut(BaseModel):
    at: datetime
    status: str = Field(
        description="sent, retry, failed, or interrupted (the sender stopped before recording "
        "the outcome)."
    )
    detail: str = Field(description="What the channel or provider answered.")


class NotificationOut(BaseModel):
    channel: Literal["email", "sms", "whatsapp", "webhook", "push"]
    trigger: str = Field(examples=["window_broken"])
    status: Literal["deferred", "pending", "sending", "sent", "failed", "dead", "cancelled"] = (
        Field(
            description="deferred (waiting: quiet hours, pacing), pending (to send), sending, "
            "sent, dead (given up: see last_error), cancelled (superseded by a newer ETA)."
        )
    )
    due_at: datetime = Field(description="When it is (or was) due to be sent.")
    attempts: int
    sent_at: datetime | None
    last_error: str
    created_at: datetime
    attempts_detail: list[NotificationAttemptOut] = Field(description="Oldest first.")


class SupportWindowOut(BaseModel):
    start: datetime
    end: datetime


class SupportNotificationOut(BaseModel):
    trigger: str = Field(examples=["out_for_delivery"])
    channel: str = Field(examples=["sms"])
    status: str = Field(examples=["sent"])
    sent_at: datetime | None


class SupportProofOut(BaseModel):
    kind: Literal["delivered", "failed"]
    at: datetime = Field(description="When the driver recorded it (the phone's clock).")
    recipient_name: str
    reason: str
    vehicle_id: str
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    photo_url: str | None = Field(description="GET with a support or dispatcher key.")
    signature_url: str | None


class SupportOrderOut(BaseModel):
    """What support needs to answer "where is my order?"."""

    order_id: str = Field(description="Your id for the order.")
    customer_ref: str
    status: str
    window: SupportWindowOut | None = Field(
        description="The current window: live from the vehicle on its route, else the "
        "dispatched plan's, else null."
    )
    eta: datetime | None = Field(description="The live ETA, while a vehicle drives the route.")
    last_fix_time: datetime | None = Field(description="The vehicle's last position time.")
    stops_before: int | None = Field(description="Stops the driver makes before this one.")
    late_minutes: int | None = Field(
        description="How late against the first window told (0: not late; null: none told)."
    )
    notifications: list[SupportNotificationOut] = Field(description="Oldest first.")
    answer: str = Field(description="A ready-to-send answer in the customer's language.")
    proof: SupportProofOut | None = Field(None, description="The driver's proof of the outcome.")


class SupportContactIn(Strict):
    order_id: str = Field(min_length=1, max_length=100, description="Your id for the order.")
    channel: Literal["phone", "email", "chat", "other"]
    note: str = Field("", max_length=2000)


class SupportContactOut(BaseModel):
    id: str
    order_id: str
    channel: str
    at: datetime
    note: str


class WismoDayOut(BaseModel):
    day: str = Field(description="The day in the organisation's time zone (YYYY-MM-DD).")
    orders: int = Field(description="Orders delivered or failed that day.")
    contacts: int = Field(description="Where-is-my-order contacts that day.")
    rate: float | None = Field(description="Contacts per 100 orders (null without orders).")
    answered_auto: int = Field(0, description="Of the contacts, answered by the service itself.")


class WismoRouteOut(BaseModel):
    vehicle_id: str | None = Field(
        description="The vehicle of the order's latest dispatched plan (null: never dispatched)."
    )
    orders: int
    contacts: int
    rate: float | None


class WismoPolicyOut(BaseModel):
    enabled: list[str] = Field(description="Triggers that notify customers.")
    default_channels: list[str]
    stops_away_n: int
    minutes_away_m: int
    budget_per_order: int
    quiet_start: str | None
    quiet_end: str | None


class WismoReportOut(BaseModel):
    timezone: str
    days: list[WismoDayOut] = Field(description="Oldest first, today last.")
    answered_auto_share: float | None = Field(
        None, description="Share of the period's contacts the service answered by itself."
    )
    routes: list[WismoRouteOut] = Field(description="Over the whole period.")
    policy: WismoPolicyOut = Field(description="The notification policy now.")
