"""The proof-of-delivery images (issue 20): for the customer on their tracking link, for
support staff by order.

The customer's ``/t/{token}/proof/{photo,signature}`` follow the tracking page's rules: the
token is the credential, an unknown or malformed one gets the page's 404, every request
counts against the same per-IP rate limit, and only the proof of the order's outcome now is
served. Staff read any order's newest proof with a support or dispatcher key. Answers are
``Cache-Control: private``: a shared cache must never keep a customer's doorstep.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.deps import OrderId, Reader, SessionDep
from api.errors import ApiError, not_found
from api.proofs import Part, customer_proof, image_key, newest_proof
from api.routes.fleet import ERRORS
from api.routes.orders import order_row
from api.routes.tracking import _not_found, _order, _too_many
from api.schemas import ErrorBody
from store.proof_files import ProofFiles, ProofFilesError

router = APIRouter()

_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image.",
        "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
    },
    503: {"model": ErrorBody},
}


def _image(data: bytes, content_type: str) -> Response:
    headers = {"Cache-Control": "private", "X-Content-Type-Options": "nosniff"}
    return Response(data, media_type=content_type, headers=headers)


def _read(files: ProofFiles, key: str) -> tuple[bytes, str] | None:
    try:
        return files.get(key)
    except ProofFilesError as exc:
        raise ApiError(503, "proof_store_unavailable", "the image cannot be read now") from exc


def _customer_image(request: Request, token: str, part: Part) -> Response:
    refused = _too_many(request)
    if refused is not None:
        return refused
    with request.app.state.sessions() as session:
        order = _order(session, token)
        row = customer_proof(session, order) if order is not None else None
        key = image_key(row, part) if row is not None else None
    found = _read(request.app.state.proof_files, key) if key is not None else None
    if found is None:
        return _not_found(request)
    return _image(*found)


@router.get("/t/{token}/proof/photo", include_in_schema=False)
def customer_photo(token: str, request: Request) -> Response:
    """The photo of the order's outcome (the tracking page's 404 when there is none)."""
    return _customer_image(request, token, "photo")


@router.get("/t/{token}/proof/signature", include_in_schema=False)
def customer_signature(token: str, request: Request) -> Response:
    """The signature of the order's outcome (the tracking page's 404 when there is none)."""
    return _customer_image(request, token, "signature")


@router.get(
    "/v1/orders/{order_id}/proof/{part}",
    tags=["support"],
    summary="The photo or signature of the order's newest proof of delivery.",
    response_class=Response,
    responses={**_IMAGE, **ERRORS, 401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)
def staff_image(
    order_id: OrderId,
    part: Annotated[Literal["photo", "signature"], Path(description="Which image.")],
    caller: Reader,
    session: SessionDep,
    request: Request,
) -> Response:
    order = order_row(session, caller.organisation_id, order_id)
    row = newest_proof(session, order)
    key = image_key(row, part) if row is not None else None
    found = _read(request.app.state.proof_files, key) if key is not None else None
    if found is None:
        raise not_found(f"{part} of the proof of order", order_id)
    return _image(*found)
