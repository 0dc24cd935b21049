from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.audit import (
    AuditEntryOut,
    CheckpointOut,
    ValidateRequest,
    ValidationResultOut,
)
from ssbg.api.schemas.common import (
    Envelope,
    ListEnvelope,
    ListMeta,
    Meta,
    SafeInt64,
    StoredDatetime,
)
from ssbg.domain.audit_bundle import BUNDLE_MEDIA_TYPE
from ssbg.domain.audit_verification import SequenceRange
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import DatabaseUnavailable, KeyUnavailable, NotFound
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission
from ssbg.domain.queries import AuditEntryFilters

router = APIRouter(prefix="/audit", tags=["audit"])
Reviewer = Annotated[Actor, Depends(require(Permission.AUDIT_READ))]


@router.get(
    "/entries",
    response_model=ListEnvelope[AuditEntryOut],
    responses=error_responses(),
)
async def list_entries(
    request: Request,
    services: ServicesDep,
    actor: Reviewer,
    action: AuditAction | None = None,
    result: AuditResult | None = None,
    actor_id: UUID | None = None,
    resource: Annotated[str | None, Query(max_length=200)] = None,
    occurred_from: Annotated[StoredDatetime | None, Query(alias="from")] = None,
    occurred_to: Annotated[StoredDatetime | None, Query(alias="to")] = None,
    after_sequence: Annotated[SafeInt64, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ListEnvelope[AuditEntryOut]:
    """Audit entries in ascending sequence order. Page with ``after_sequence``: pass the
    previous page's ``meta.next_cursor``. This read is itself recorded (``AUDIT_READ``)."""
    filters = AuditEntryFilters(
        action=action.value if action else None,
        result=result.value if result else None,
        actor_id=actor_id,
        resource=resource,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )
    page = await services.audit.list_entries(actor, filters, after_sequence, limit)
    return ListEnvelope(
        data=[AuditEntryOut.of(entry) for entry in page.entries],
        meta=ListMeta(
            request_id=request_id_of(request.scope),
            next_cursor=str(page.next_after_sequence) if page.next_after_sequence else None,
        ),
    )


@router.get(
    "/checkpoints",
    response_model=ListEnvelope[CheckpointOut],
    responses=error_responses(),
)
async def list_checkpoints(
    request: Request,
    services: ServicesDep,
    actor: Reviewer,
    after_sequence: Annotated[SafeInt64, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ListEnvelope[CheckpointOut]:
    """Signed checkpoints in ascending sequence order, paged like ``/audit/entries``.

    Each signature (base64 DER, ECDSA P-384/SHA-384) covers the checkpoint's fields as
    documented in docs/audit-evidence.md. This read is itself recorded (``AUDIT_READ``)."""
    page = await services.audit.list_checkpoints(actor, after_sequence, limit)
    return ListEnvelope(
        data=[CheckpointOut.of(checkpoint) for checkpoint in page.checkpoints],
        meta=ListMeta(
            request_id=request_id_of(request.scope),
            next_cursor=str(page.next_after_sequence) if page.next_after_sequence else None,
        ),
    )


@router.post(
    "/validate",
    response_model=Envelope[ValidationResultOut],
    responses=error_responses(NotFound, DatabaseUnavailable, KeyUnavailable),
)
async def validate_chain(
    request: Request,
    services: ServicesDep,
    actor: Reviewer,
    body: ValidateRequest | None = None,
) -> Envelope[ValidationResultOut]:
    """Validate the chain (or ``from_sequence``..``to_sequence``): every hash recomputed, every
    link, sequence continuity, every checkpoint signature. An invalid chain is a 200 with
    ``valid: false``, the first invalid sequence and the reason. Recorded as ``AUDIT_VALIDATE``
    with the result (``FAILED`` when invalid)."""
    body = body or ValidateRequest()
    result = await services.audit_validation.validate_chain(
        actor, SequenceRange(body.from_sequence, body.to_sequence), via="api"
    )
    return Envelope(
        data=ValidationResultOut.of(result), meta=Meta(request_id=request_id_of(request.scope))
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {BUNDLE_MEDIA_TYPE: {}},
            "description": "The evidence bundle, JSON Lines (docs/audit-evidence.md)",
            "headers": {"Content-Disposition": {"required": True, "schema": {"type": "string"}}},
        },
        **error_responses(NotFound, DatabaseUnavailable, KeyUnavailable),
    },
)
async def export_bundle(
    services: ServicesDep,
    actor: Reviewer,
    from_sequence: Annotated[SafeInt64 | None, Query(ge=1)] = None,
    to_sequence: Annotated[SafeInt64 | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """The evidence bundle of the chain (or a range), streamed: a header with the signing
    public key, the entries, the signed checkpoints, an end record. ``ssbg audit verify
    --bundle`` checks it offline. Recorded as ``AUDIT_EXPORT`` with the range."""
    stream = await services.audit_export.export_bundle(
        actor, SequenceRange(from_sequence, to_sequence)
    )
    return bundle_response(stream)


def bundle_response(stream: AsyncIterator[bytes]) -> StreamingResponse:
    """The evidence bundle streamed as an attachment (also the web console's export)."""
    return StreamingResponse(
        stream,
        media_type=BUNDLE_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="ssbg-audit-bundle.jsonl"'},
    )
