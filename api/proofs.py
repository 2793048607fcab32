"""Proof of delivery as customers and support staff see it (issue 20): the driver's record of
the outcome (time, recipient, reason) with the photo and the signature.

A customer sees the proof of their order's current outcome only, once it is delivered or
failed (an earlier attempt's, before a reschedule, is not theirs to see again); support sees
the newest proof whatever the order's status. The images live in the proof file store
(:mod:`store.proof_files`), built here from the service's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from sqlalchemy.orm import Session

from api.driver_stops import latest_proofs
from api.schemas import SupportProofOut
from api.settings import Settings
from notify.render import catalogue, resolve_locale
from store.proof_files import ProofFiles, open_proof_files
from store.schema import DeliveryProofRow, OrderRow, VehicleRow

Part = Literal["photo", "signature"]


def proof_files_for(settings: Settings) -> ProofFiles:
    """The service's proof file store: the bucket when configured, else ``data_dir/proofs``."""
    secret = settings.proof_s3_secret_access_key
    return open_proof_files(
        settings.data_dir / "proofs",
        bucket=settings.proof_s3_bucket,
        endpoint_url=settings.proof_s3_endpoint_url,
        region=settings.proof_s3_region,
        access_key_id=settings.proof_s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret is not None else None,
    )


def newest_proof(session: Session, order: OrderRow) -> DeliveryProofRow | None:
    """The order's newest delivered / failed proof, whatever its status now."""
    return latest_proofs(session, order.organisation_id, [order.id]).get(order.id)


def customer_proof(session: Session, order: OrderRow) -> DeliveryProofRow | None:
    """The proof of the order's outcome now, or None (not delivered or failed, or no proof)."""
    if order.status not in ("delivered", "failed"):
        return None
    row = newest_proof(session, order)
    return row if row is not None and row.kind == order.status else None


def image_key(row: DeliveryProofRow, part: Part) -> str | None:
    return row.photo_key if part == "photo" else row.signature_key


@dataclass(frozen=True, slots=True)
class ProofBlock:
    """The tracking page's "Proof of delivery" block, worded in the customer's language."""

    texts: dict[str, str]
    outcome: str
    at: str
    recipient_name: str
    reason: str
    photo_url: str | None
    signature_url: str | None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def proof_block(session: Session, order: OrderRow, token: str) -> ProofBlock | None:
    """What the customer sees of the proof on ``/t/{token}`` (None: nothing to show)."""
    row = customer_proof(session, order)
    if row is None:
        return None
    language, locale = resolve_locale(order.language)
    texts: dict[str, str] = catalogue(language)["proof"]
    at: datetime = row.at
    return ProofBlock(
        texts=texts,
        outcome=texts[row.kind],
        at=format_datetime(at, "medium", tzinfo=_zone(order.timezone), locale=locale),
        recipient_name=row.recipient_name,
        reason=texts.get(row.reason, row.reason) if row.kind == "failed" else "",
        photo_url=f"/t/{token}/proof/photo" if row.photo_key else None,
        signature_url=f"/t/{token}/proof/signature" if row.signature_key else None,
    )


def support_proof(session: Session, order: OrderRow) -> SupportProofOut | None:
    """The newest proof for the support lookup, with the staff URLs of its images."""
    row = newest_proof(session, order)
    if row is None:
        return None
    vehicle = session.get(VehicleRow, row.vehicle_id)
    base = f"/v1/orders/{quote(order.external_id, safe='')}/proof"
    return SupportProofOut(
        kind=row.kind,  # delivered or failed, by the query
        at=row.at,
        recipient_name=row.recipient_name,
        reason=row.reason,
        vehicle_id=vehicle.external_id if vehicle is not None else "",
        lat=row.lat,
        lon=row.lon,
        accuracy_m=row.accuracy_m,
        photo_url=f"{base}/photo" if row.photo_key else None,
        signature_url=f"{base}/signature" if row.signature_key else None,
    )
