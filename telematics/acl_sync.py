"""Keeping a running Mosquitto's password and ACL files in step with the store, without a
restart: after a device is registered, rotated or revoked, or a device key (the drivers' app's
MQTT account) is created or revoked, the service exports the files again
(telematics/acl.py) and runs the broker's reload command (Mosquitto rereads both files on
SIGHUP). Configured by ``LASTMILE_MOSQUITTO_ACL_DIR`` and ``LASTMILE_MOSQUITTO_RELOAD_COMMAND``
(docs/deployment.md).

The export must carry the service's own MQTT password (``LASTMILE_MQTT_URL`` with a user and
password): without one it would write a new service password, and the reload would lock the
service itself out of the broker.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from telematics.acl import AclError, export_mosquitto
from telematics.mqtt import BrokerAddress

log = logging.getLogger(__name__)
RELOAD_TIMEOUT_S = 30.0


class AclSyncError(RuntimeError):
    """The files could not be written or the broker did not take them (the message says)."""


@dataclass
class AclSync:
    out_dir: Path
    mqtt_url: str
    reload_command: tuple[str, ...]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def configure(
        cls, out_dir: Path | None, mqtt_url: str | None, reload_command: str | None
    ) -> AclSync | None:
        """From the settings; None when no export folder is set. Raises ValueError naming the
        setting that is missing or unusable."""
        if out_dir is None:
            return None
        if not mqtt_url:
            raise ValueError(
                "LASTMILE_MOSQUITTO_ACL_DIR needs LASTMILE_MQTT_URL (the broker whose files it is)"
            )
        address = BrokerAddress.parse(mqtt_url)
        if not address.username or not address.password:
            raise ValueError(
                "LASTMILE_MQTT_URL must carry the service's user and password "
                "(mqtt://user:password@host:port) when LASTMILE_MOSQUITTO_ACL_DIR is set: "
                "the export keeps that account"
            )
        command = tuple(shlex.split(reload_command or ""))
        if not command:
            raise ValueError(
                "LASTMILE_MOSQUITTO_ACL_DIR needs LASTMILE_MOSQUITTO_RELOAD_COMMAND "
                "(for example: systemctl reload mosquitto)"
            )
        return cls(out_dir, mqtt_url, command)

    def run(self, sessions: sessionmaker[Session]) -> int:
        """Export every organisation's devices and device keys and reload the broker; the
        number of their accounts written. One at a time: two changes at once export twice,
        in order."""
        with self._lock:
            try:
                done = export_mosquitto(sessions, self.out_dir, None, self.mqtt_url)
            except (AclError, OSError) as exc:
                raise AclSyncError(f"could not write the broker's files: {exc}") from exc
            _reload(self.reload_command)
            if done.skipped:
                log.warning("ACL export left out %d device(s) or key(s)", len(done.skipped))
            return done.devices + done.device_keys


def _reload(command: Sequence[str]) -> None:
    try:
        subprocess.run(
            list(command), capture_output=True, text=True, timeout=RELOAD_TIMEOUT_S, check=True
        )
    except subprocess.CalledProcessError as exc:
        raise AclSyncError(
            f"the reload command failed ({exc.returncode}): {(exc.stderr or '').strip()[:300]}"
        ) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AclSyncError(f"the reload command could not run: {exc}") from exc
