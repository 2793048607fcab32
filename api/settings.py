"""Service settings, from the environment (``LASTMILE_`` prefix) or arguments."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LASTMILE_")

    data_dir: Path = Field(Path("var"), description="Where the SQLite file and caches live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default a SQLite file in data_dir."
    )
    osm_path: Path | None = Field(None, description="Road network file; default Helsinki.")
    plan_time_limit_s: float = Field(10.0, gt=0, description="Default solver time limit.")
    max_plan_time_limit_s: float = Field(300.0, gt=0, description="Largest limit a job may ask.")
    mqtt_url: str | None = Field(
        None, description="mqtt://host:port of the broker; unset: a private Mosquitto."
    )
    mqtt: bool = Field(True, description="Ingest positions over MQTT at all.")
    mqtt_client_id: str = Field("lastmile-ingester", description="Fixed: keeps the session.")
    mqtt_shared_group: str | None = Field(None, description="Split load: $share/{group}/...")
    public_base_url: str = Field("http://127.0.0.1:8000", description="For tracking links.")

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lastmile.db').resolve()}"
