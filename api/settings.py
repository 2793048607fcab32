"""Service settings, from the environment (``LASTMILE_`` prefix) or arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LASTMILE_")

    data_dir: Path = Field(Path("var"), description="Where the SQLite file and caches live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default a SQLite file in data_dir."
    )
    sqlite_busy_timeout_s: float = Field(
        30.0, gt=0, description="SQLite: how long a write waits for a lock before failing."
    )
    osm_path: Path | None = Field(None, description="Road network file; default Helsinki.")
    plan_time_limit_s: float = Field(10.0, gt=0, description="Default solver time limit.")
    max_plan_time_limit_s: float = Field(300.0, gt=0, description="Largest limit a job may ask.")
    mqtt_url: str | None = Field(
        None, description="mqtt://host:port of the broker; unset: a private Mosquitto."
    )
    mqtt: bool = Field(True, description="Ingest positions over MQTT at all.")
    mqtt_ws_url: str | None = Field(
        None,
        description="The broker of mqtt_url as drivers' phones reach it over WebSockets "
        "(wss://broker.example/mqtt): the drivers' web app publishes fixes there, else over "
        "HTTP. The phone connects with user name = its device key's prefix (lm_<prefix>_...) "
        "and password = the key; the files of `lastmile devices export-mosquitto` (and "
        "mosquitto_acl_dir) hold that account, allowed its vehicle's position topic only "
        "(api/driver_mqtt.py). A phone refused keeps sending over HTTP. Unset: "
        "the private broker's own WebSocket listener, for a phone on this machine only.",
    )
    mosquitto_acl_dir: Path | None = Field(
        None,
        description="Where the service keeps the broker's password and ACL files up to date "
        "(as `lastmile devices export-mosquitto` writes them) after every device change; needs "
        "mqtt_url with the service's user and password, and mosquitto_reload_command. Unset: "
        "the files are exported by hand.",
    )
    mosquitto_reload_command: str | None = Field(
        None,
        description="Run after the files are written, so the broker rereads them without a "
        "restart: e.g. `systemctl reload mosquitto` or `pkill -HUP -x mosquitto`.",
    )
    mqtt_client_id: str = Field("lastmile-ingester", description="Fixed: keeps the session.")
    mqtt_shared_group: str | None = Field(None, description="Split load: $share/{group}/...")
    mqtt_shed_backlog: int = Field(
        400,
        ge=0,
        description="Overload (ADR 0026): with more than this many messages waiting for "
        "mqtt_shed_after_s on end, the ingester coalesces older fixes of each device (every "
        "driver event and each device's newest fix stored, the rest counted); 0: never.",
    )
    mqtt_shed_after_s: float = Field(
        1.0, ge=0, description="How long the backlog must stay over mqtt_shed_backlog first."
    )
    mqtt_reader: Literal["process", "thread"] = Field(
        "process",
        description="Where the ingester's MQTT client reads (ADR 0027): a process of its own "
        "(the default: off the pipeline's interpreter lock) or a thread of the service's.",
    )
    public_base_url: str = Field("http://127.0.0.1:8000", description="For tracking links.")
    task_queue_url: str | None = Field(
        None, description="redis://... or amqp://...: planning jobs go to `lastmile worker`."
    )
    task_queue_name: str = Field(
        "lastmile-plans", description="The task queue's name (and Redis key namespace)."
    )
    # Rate limits and stream caps shared by the service processes (docs/deployment.md).
    redis_url: str | None = Field(
        None,
        description="redis://host:port/db where every service process counts the tracking "
        "page's rate limit and the open live streams; unset: each process counts in its own "
        "memory. Unreachable at request time: fail open (the process counts in memory, logs a "
        "warning and counts lastmile_redis_errors).",
    )
    redis_key_prefix: str = Field(
        "lastmile", description="Namespace of the rate limits' and stream caps' Redis keys."
    )
    stream_cap_per_ip: int = Field(
        10,
        ge=1,
        description="Most live streams (server-sent events) of one kind, tracking page or "
        "dashboard, open at once from one client address; more get 429.",
    )
    stream_cap_per_organisation: int = Field(
        1000,
        ge=1,
        description="Most live streams open at once for one organisation: its dashboards and "
        "its customers' tracking pages together; more get 429.",
    )

    # Live ETAs: silent vehicles and the fleet's prior (docs/adr/0018).
    silent_after_s: float = Field(
        120.0,
        gt=0,
        description="A vehicle on its route with no fix for longer than this is silent: shown "
        "as 'no signal', taken to stand where it was last seen, its ETAs recomputed on a timer.",
    )
    silent_tick_s: float = Field(
        30.0, gt=0, description="How often silent vehicles' ETAs are recomputed (service time)."
    )
    prior_refit_s: float = Field(
        3600.0,
        gt=0,
        description="How often the fleet's ETA prior is fitted again from the store's history "
        "(service time; it is also fitted on start).",
    )
    prior_min_legs: int = Field(
        50, ge=1, description="Fewer observed legs than this: the ETA prior stays neutral."
    )
    prior_history_days: int = Field(
        28, ge=1, description="Past days of history the ETA prior is fitted from."
    )

    # Customer notifications: the outbox sender and its channels (each built only when set).
    sender_enabled: bool = Field(True, description="Deliver queued customer notifications.")
    sender_max_attempts: int = Field(8, ge=1, description="Tries before a message is dead.")
    sender_lease_s: float = Field(
        60.0, gt=0, description="A sender that stops mid-send: its message is retried after."
    )
    sender_backoff_s: float = Field(
        30.0, gt=0, description="First wait before a failed send is retried; doubles, to 1 h."
    )
    tracking_base_url: str | None = Field(
        None, description="Base of customers' tracking links; default public_base_url."
    )
    smtp_host: str | None = Field(None, description="SMTP server for e-mail; unset: no e-mail.")
    smtp_port: int = Field(587, ge=1, le=65_535)
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "starttls", description="starttls (587), ssl (465) or none (a local relay)."
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = Field("", description="From: address when a tenant's branding has none.")
    sms_twilio_base_url: str = Field("https://api.twilio.com", description="Twilio-shaped API.")
    sms_twilio_account_sid: str | None = Field(None, description="Set (with the token): Twilio.")
    sms_twilio_auth_token: SecretStr | None = None
    sms_url: str | None = Field(None, description="A generic JSON SMS API (bearer token).")
    sms_token: SecretStr | None = None
    sms_from: str = Field("", description="Sender number or id when a tenant's branding has none.")
    whatsapp_graph_url: str | None = Field(
        None,
        description="Where WhatsApp's Graph API is reached (a proxy or a test double); unset: "
        "https://graph.facebook.com. Numbers and tokens are each organisation's own.",
    )
    webhook_allow_private: bool = Field(
        False,
        description="Let tenants' webhook URLs reach loopback, private, link-local and other "
        "non-public addresses (tests and the demo's local receiver only; never in production).",
    )
    # Customers' e-mails read from the tenants' own mailboxes (issue 19; notify/inbox_imap.py).
    imap_poll_s: float = Field(
        60.0, ge=0, description="How often each tenant's IMAP mailbox is read (s); 0: never."
    )
    imap_allow_private: bool = Field(
        False,
        description="Let tenants' mailbox hosts be loopback, private or other non-public "
        "addresses (tests and the demo only; never in production).",
    )

    # Drivers' proof of delivery, photos and signatures (issue 20): an S3-compatible bucket
    # when proof_s3_bucket is set (several service machines), else files in data_dir/proofs.
    proof_s3_bucket: str | None = Field(None, description="Bucket for proof images; unset: disk.")
    proof_s3_endpoint_url: str | None = Field(
        None, description="An S3-compatible store's URL (MinIO, Ceph...); unset: AWS."
    )
    proof_s3_region: str | None = Field(None, description="The bucket's region, if it needs one.")
    proof_s3_access_key_id: str | None = Field(
        None, description="Unset: boto3's own credential chain (environment, instance role)."
    )
    proof_s3_secret_access_key: SecretStr | None = None

    # The dispatcher dashboard's sign-in (docs/deployment.md, docs/adr/0023).
    dashboard_session_hours: float = Field(
        12.0,
        ge=0.25,
        le=72.0,
        description="A dashboard session's absolute lifetime from sign-in (a working day by "
        "default), in wall-clock hours; then the dispatcher signs in again.",
    )

    @model_validator(mode="after")
    def _ws_url_of_the_configured_broker(self) -> Settings:
        # Phones publishing to a broker the ingester does not read would lose every fix.
        if self.mqtt_ws_url and not self.mqtt_url:
            raise ValueError("mqtt_ws_url needs mqtt_url: the broker phones publish to")
        if self.mqtt_ws_url and not self.mqtt_ws_url.startswith(("ws://", "wss://")):
            raise ValueError("mqtt_ws_url must start with wss:// (or ws://)")
        return self

    @property
    def tracking_base(self) -> str:
        return (self.tracking_base_url or self.public_base_url).rstrip("/")

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lastmile.db').resolve()}"
