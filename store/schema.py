"""Database tables (SQLAlchemy 2). The domain types know nothing of these; store/repo.py maps.

Every record belongs to an organisation (tenant). Times are stored timezone-aware in UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which forgets zones) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: UTCDateTime,
    }


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    branding: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notification_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    #: A ``device`` key's one vehicle (None for other roles; a device key without one, made
    #: before keys were bound, acts for no vehicle).
    vehicle_id: Mapped[str | None] = mapped_column(
        ForeignKey("vehicles.id"), index=True, default=None
    )
    #: A device key's Mosquitto password hash (PBKDF2-SHA512 ``$7$``), so the exported
    #: password file lets the drivers' app publish over MQTT with the key (ADR 0014); None
    #: for other roles and for keys made before revision 0014. The key itself is never stored.
    mqtt_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookSecretRow(Base):
    """A tenant's webhook signing secret (docs/webhooks.md, ADR 0017). Stored as it is, like
    tracking tokens: the sender needs it to sign. Valid while not revoked and not past
    ``expires_at`` (None: until replaced); every valid one signs each webhook."""

    __tablename__ = "webhook_secrets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when a newer secret replaced this one: it keeps signing until then.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class DepotRow(Base):
    __tablename__ = "depots"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)


class VehicleRow(Base):
    __tablename__ = "vehicles"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    #: Unique per organisation; indexed alone too: MQTT topics name vehicles by it only.
    external_id: Mapped[str] = mapped_column(String(100), index=True)
    driver_first_name: Mapped[str] = mapped_column(String(100), default="")
    start_lat: Mapped[float] = mapped_column(Float)
    start_lon: Mapped[float] = mapped_column(Float)
    end_lat: Mapped[float | None] = mapped_column(Float, default=None)
    end_lon: Mapped[float | None] = mapped_column(Float, default=None)
    shift_start: Mapped[datetime] = mapped_column()
    shift_end: Mapped[datetime] = mapped_column()
    capacity: Mapped[list[Any]] = mapped_column(default=list)
    skills: Mapped[list[Any]] = mapped_column(default=list)
    max_duration_s: Mapped[int | None] = mapped_column(Integer, default=None)
    max_distance_m: Mapped[int | None] = mapped_column(Integer, default=None)
    fixed_cost: Mapped[float] = mapped_column(Float, default=0.0)
    cost_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    cost_per_km: Mapped[float] = mapped_column(Float, default=0.0)
    breaks: Mapped[list[Any]] = mapped_column(default=list)
    active_plan_id: Mapped[str | None] = mapped_column(String(32), default=None)


class DeviceRow(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), index=True)
    mqtt_username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    #: How the device reports: "fleet" (our JSON over MQTT), "owntracks" or "osmand".
    protocol: Mapped[str] = mapped_column(String(20), default="fleet")
    #: The device's own id: OsmAnd's ``id``, or OwnTracks' ``user/device``.
    external_device_id: Mapped[str | None] = mapped_column(String(200), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    windows: Mapped[list[Any]] = mapped_column(default=list)
    service_s: Mapped[int] = mapped_column(Integer, default=0)
    demand: Mapped[list[Any]] = mapped_column(default=list)
    skills: Mapped[list[Any]] = mapped_column(default=list)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    optional: Mapped[bool] = mapped_column(Boolean, default=False)
    penalty: Mapped[float | None] = mapped_column(Float, default=None)
    customer_ref: Mapped[str] = mapped_column(String(200), default="")
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    contact_phone: Mapped[str] = mapped_column(String(50), default="", index=True)
    contact_email: Mapped[str] = mapped_column(String(200), default="", index=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    channels: Mapped[list[Any]] = mapped_column(default=list)
    #: The customer asked for no messages at all.
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    tracking_token: Mapped[str] = mapped_column(String(64), unique=True)
    #: The notification policy's memory for this order (what was told, queued, sent).
    notify_state: Mapped[dict[str, Any]] = mapped_column(default=dict, deferred=True)
    #: What the customer told the driver on the tracking page (safe place, notes, access code).
    delivery_instructions: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: Where the driver goes, as the shop wrote it (the driver's app shows it; issue 20).
    address: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)


class PlanRow(Base):
    __tablename__ = "plans"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    parent_plan_id: Mapped[str | None] = mapped_column(String(32), default=None)
    kind: Mapped[str] = mapped_column(String(20), default="plan")  # plan | replan | insert
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    geojson: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)


class PlanJobRow(Base):
    __tablename__ = "plan_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    progress: Mapped[list[Any]] = mapped_column(default=list)  # [[elapsed_s, cost], ...]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class PlanRouteRow(Base):
    __tablename__ = "plan_routes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), index=True)
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()
    distance_m: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[int] = mapped_column(Integer)


class PlanStopRow(Base):
    __tablename__ = "plan_stops"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    route_id: Mapped[str] = mapped_column(ForeignKey("plan_routes.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    arrival: Mapped[datetime] = mapped_column()
    service_start: Mapped[datetime] = mapped_column()
    departure: Mapped[datetime] = mapped_column()
    wait_s: Mapped[int] = mapped_column(Integer)


# Room for the live parts (positions, ETAs, events, notifications); later issues fill them.
class PositionRow(Base):
    __tablename__ = "positions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), index=True)
    fix_time: Mapped[datetime] = mapped_column(index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed_mps: Mapped[float | None] = mapped_column(Float, default=None)
    heading_deg: Mapped[float | None] = mapped_column(Float, default=None)
    accuracy_m: Mapped[float | None] = mapped_column(Float, default=None)
    source: Mapped[str] = mapped_column(String(20), default="")
    #: False for fixes kept only as history (arrived out of order).
    applied: Mapped[bool] = mapped_column(Boolean, default=True)
    received_at: Mapped[datetime | None] = mapped_column(default=None)


class EtaRow(Base):
    __tablename__ = "eta_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    computed_at: Mapped[datetime] = mapped_column(index=True)
    eta: Mapped[datetime] = mapped_column()
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    vehicle_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxRow(Base):
    __tablename__ = "notification_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    due_at: Mapped[datetime] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    #: A sender holds the row until then (a crashed sender's rows are taken up again after).
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationAttemptRow(Base):
    """Every attempt to deliver an outbox message, with what the channel answered."""

    __tablename__ = "notification_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("notification_outbox.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20))  # sent | retry | failed
    detail: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[str | None] = mapped_column(String(200), default=None)


class ProgressRow(Base):
    """Each vehicle's progress along its active route (the live ETA core's input)."""

    __tablename__ = "vehicle_progress"
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    plan_id: Mapped[str | None] = mapped_column(String(32), default=None)
    last_fix_time: Mapped[datetime | None] = mapped_column(default=None)
    last_lat: Mapped[float | None] = mapped_column(Float, default=None)
    last_lon: Mapped[float | None] = mapped_column(Float, default=None)
    #: Deferred: the ingester reads it only when its own cached copy is out of date.
    state: Mapped[dict[str, Any]] = mapped_column(default=dict, deferred=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SupportContactRow(Base):
    """A customer's "where is my order?" contact, as support recorded it (the WISMO rate)."""

    __tablename__ = "support_contacts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    #: None: a customer's message that matched none of their orders (issue 19).
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    #: phone | email | chat | other (recorded by a person); sms | whatsapp (a message)
    channel: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    #: The customer's own message, and the phone or e-mail it came from.
    sender: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    #: What the rules read in the message (notify/intents.py).
    intent: Mapped[str | None] = mapped_column(String(20), default=None)
    #: auto (the service, by itself) | person | None (waiting in the support queue).
    answered_by: Mapped[str | None] = mapped_column(String(10), default=None, index=True)
    #: The answer sent (auto) or suggested to the person who will answer.
    answer: Mapped[str] = mapped_column(Text, default="")
    #: Why a person must answer: no_order | several_orders | not_theirs | not_sure.
    handover: Mapped[str | None] = mapped_column(String(20), default=None)
    #: The provider's id of the message (Twilio's MessageSid...): a webhook delivered twice
    #: is one contact.
    provider_message_id: Mapped[str | None] = mapped_column(String(100), default=None)

    __table_args__ = (
        UniqueConstraint(
            "organisation_id", "provider_message_id", name="uq_support_contacts_provider_message"
        ),
    )


class InboundChannelRow(Base):
    """A tenant's messaging provider for customers' messages (issue 19): the secret the
    provider signs its webhooks with, stored as it is (the service must compute the same
    signature, as with webhook secrets: ADR 0017)."""

    __tablename__ = "inbound_channels"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    provider: Mapped[str] = mapped_column(String(20))  # twilio, whatsapp, mailgun, imap, sms
    secret: Mapped[str] = mapped_column(String(200))
    #: What else the provider needs (WhatsApp's phone number id and access token, a
    #: mailbox's host and login); secrets in it are stored as they are, like ``secret``.
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("organisation_id", "provider", name="uq_inbound_channels_provider"),
    )


class DeliveryProofRow(Base):
    """A driver's action from the drivers' app (issue 20): arrived, delivered or failed, with
    the proof of the outcome (recipient, where, photo and signature kept in the proof file
    store by key). One row per action id and organisation: a retried action is stored once."""

    __tablename__ = "delivery_proofs"
    __table_args__ = (
        UniqueConstraint("organisation_id", "action_id", name="uq_delivery_proofs_action"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    vehicle_id: Mapped[str] = mapped_column(ForeignKey("vehicles.id"), index=True)
    #: Made by the driver's phone: the same action sent again carries the same id.
    action_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # arrived | delivered | failed
    reason: Mapped[str] = mapped_column(String(40), default="")
    recipient_name: Mapped[str] = mapped_column(String(120), default="")
    #: When the driver pressed, by the phone's clock.
    at: Mapped[datetime] = mapped_column()
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    accuracy_m: Mapped[float | None] = mapped_column(Float, default=None)
    photo_key: Mapped[str | None] = mapped_column(String(300), default=None)
    signature_key: Mapped[str | None] = mapped_column(String(300), default=None)
    #: SHA-256 of the action as sent: the same id with another body is refused.
    body_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetterRow(Base):
    """A message that could not be used, with why (never silently dropped)."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(300), default="")
    reason: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text, default="")


class DashboardSessionRow(Base):
    """A dispatcher dashboard's sign-in (docs/adr/0023). The browser's cookie holds a random
    id; only its SHA-256 hash is stored. Live while not revoked (sign-out), not past
    ``expires_at`` and its API key not revoked (checked at every request)."""

    __tablename__ = "dashboard_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditRow(Base):
    """Who did what: an organisation's actions (dispatch, re-plan, cancel, settings, keys),
    each written in the action's own transaction. ``detail`` holds no secrets and no
    customers' contact data (store/audit.py refuses such fields)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_organisation_id_at", "organisation_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    #: The acting API key (None: the service itself, or a command-line tool).
    api_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id"), index=True, default=None
    )
    #: The key's name and role when it acted.
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    actor_role: Mapped[str] = mapped_column(String(20), default="")
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(100), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
