"""Re-exporting the broker's password and ACL files after a change to who may publish: a
device registered, rotated or revoked, or a device key (the drivers' app's MQTT account)
created or revoked. The export runs after the response, when the change is committed, so it
reads what the caller was told; with no ``LASTMILE_MOSQUITTO_ACL_DIR`` nothing is managed and
``lastmile devices export-mosquitto`` does it by hand (telematics/acl_sync.py).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import BackgroundTasks, Request

from api.device_schemas import BrokerAcl
from telematics.acl_sync import AclSync, AclSyncError

log = logging.getLogger(__name__)


def sync_later(request: Request, background: BackgroundTasks) -> BrokerAcl:
    """After the response (the change committed by then): export the broker's files and
    reload it, when the service manages them."""
    sync: AclSync | None = getattr(request.app.state, "acl_sync", None)
    if sync is None:
        return "not_managed"
    background.add_task(_sync, request.app.state)
    return "reloading"


def _sync(state: Any) -> None:
    try:
        accounts = state.acl_sync.run(state.sessions)
    except AclSyncError as exc:
        state.acl_reloads.labels("failed").inc()
        log.error("broker ACL not reloaded: %s", exc)
        return
    state.acl_reloads.labels("reloaded").inc()
    log.info("broker ACL reloaded: %d device accounts", accounts)
