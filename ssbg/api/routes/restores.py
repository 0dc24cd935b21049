from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse

from ssbg.api.contract import location_header
from ssbg.api.dependencies import MfaTokenDep, ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.paths import API_PREFIX
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.common import Envelope, Meta
from ssbg.api.schemas.restores import RestoreCreate, RestoreOut, RestoreReject
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    BackupNotFound,
    CryptoShredded,
    ForbiddenRole,
    IncidentLockdown,
    IntegrityFailure,
    InvalidStateTransition,
    KeyUnavailable,
    PolicyDenied,
    RateLimited,
    RestoreNotFound,
    RestoreTokenExpired,
    StorageUnavailable,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission
from ssbg.domain.restore_lifecycle import RestoreStatus
from ssbg.services.restores.downloads import RestoreDownload

router = APIRouter(prefix="/restores", tags=["restores"])
Requester = Annotated[Actor, Depends(require(Permission.RESTORE_REQUEST))]
Approver = Annotated[Actor, Depends(require(Permission.RESTORE_APPROVE, mfa=True))]
_AUTH = (AuthInvalidKey, ForbiddenRole)
_POLICY = (AuthMfaRequired, AuthMfaInvalid, PolicyDenied, IncidentLockdown, RateLimited)
_VERIFY = (IntegrityFailure, CryptoShredded, KeyUnavailable, StorageUnavailable)


def _envelope(request: Request, restore: RestoreOut) -> Envelope[RestoreOut]:
    return Envelope(data=restore, meta=Meta(request_id=request_id_of(request.scope)))


@router.post(
    "",
    status_code=201,
    response_model=Envelope[RestoreOut],
    responses={
        201: location_header(),
        202: {
            "model": Envelope[RestoreOut],
            "description": "Pending approval (incident level 2)",
            **location_header(),
        },
        **error_responses(*_AUTH, *_POLICY, *_VERIFY, BackupNotFound, InvalidStateTransition),
    },
)
async def request_restore(
    body: RestoreCreate,
    request: Request,
    response: Response,
    services: ServicesDep,
    actor: Requester,
    mfa_token: MfaTokenDep = None,
) -> Envelope[RestoreOut]:
    """Request a restore: policy (incident level, role, classification and MFA, business
    hours, rate limits, custom records), then decrypt-and-verify of the whole backup, then a
    time-limited download token — shown in this response only. Under incident level 2 the
    request waits for a second admin's approval (202)."""
    outcome = await services.restores.request_restore(
        actor, body.backup_id, body.justification, mfa_token=mfa_token
    )
    if outcome.restore.status is RestoreStatus.PENDING_APPROVAL:
        response.status_code = 202
    response.headers["Location"] = f"{API_PREFIX}/restores/{outcome.restore.id}"
    return _envelope(request, RestoreOut.of(outcome.restore, API_PREFIX, outcome.token))


@router.get(
    "/{restore_id}",
    response_model=Envelope[RestoreOut],
    responses=error_responses(*_AUTH, RestoreNotFound),
)
async def get_restore(
    restore_id: UUID, request: Request, services: ServicesDep, actor: Requester
) -> Envelope[RestoreOut]:
    """A restore request and its status (never its token)."""
    restore = await services.restores.get_restore(restore_id)
    return _envelope(request, RestoreOut.of(restore, API_PREFIX))


@router.post(
    "/{restore_id}/approve",
    response_model=Envelope[RestoreOut],
    responses=error_responses(
        *_AUTH, *_POLICY, *_VERIFY, RestoreNotFound, BackupNotFound, InvalidStateTransition
    ),
)
async def approve_restore(
    restore_id: UUID,
    request: Request,
    services: ServicesDep,
    actor: Approver,
) -> Envelope[RestoreOut]:
    """Approve another admin's pending restore (MFA required). The backup is decrypted and
    verified now; the requester then collects a token with ``POST /restores/{id}/token``."""
    restore = await services.restores.approve(actor, restore_id)
    return _envelope(request, RestoreOut.of(restore, API_PREFIX))


@router.post(
    "/{restore_id}/reject",
    response_model=Envelope[RestoreOut],
    responses=error_responses(
        *_AUTH,
        AuthMfaRequired,
        AuthMfaInvalid,
        PolicyDenied,
        RestoreNotFound,
        InvalidStateTransition,
    ),
)
async def reject_restore(
    restore_id: UUID,
    body: RestoreReject,
    request: Request,
    services: ServicesDep,
    actor: Approver,
) -> Envelope[RestoreOut]:
    """Reject another admin's pending restore (MFA required)."""
    restore = await services.restores.reject(actor, restore_id, body.reason)
    return _envelope(request, RestoreOut.of(restore, API_PREFIX))


@router.post(
    "/{restore_id}/token",
    status_code=201,
    response_model=Envelope[RestoreOut],
    responses={
        202: {"model": Envelope[RestoreOut], "description": "Needs approval first"},
        **error_responses(
            *_AUTH,
            *_POLICY,
            RestoreNotFound,
            InvalidStateTransition,
            CryptoShredded,
            BackupNotFound,
        ),
    },
)
async def issue_token(
    restore_id: UUID,
    request: Request,
    response: Response,
    services: ServicesDep,
    actor: Requester,
    mfa_token: MfaTokenDep = None,
) -> Envelope[RestoreOut]:
    """A fresh download token for your own approved or completed restore (also how a lost or
    expired token is replaced). Policy, incident level and MFA are checked again."""
    outcome = await services.restores.issue_token(actor, restore_id, mfa_token=mfa_token)
    if outcome.token is None:
        response.status_code = 202
    return _envelope(request, RestoreOut.of(outcome.restore, API_PREFIX, outcome.token))


def _content_disposition(filename: str) -> str:
    fallback = (
        "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
        or "restore.bin"
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/{restore_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            "description": (
                "The plaintext, as the backup's recorded content type; X-Content-SHA512 is its "
                "SHA-512 (hex)."
            ),
            "headers": {
                "Content-Disposition": {"required": True, "schema": {"type": "string"}},
                "X-Content-SHA512": {
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
                },
            },
        },
        **error_responses(
            *_AUTH,
            RestoreNotFound,
            RestoreTokenExpired,
            IncidentLockdown,
            PolicyDenied,
            CryptoShredded,
            KeyUnavailable,
            StorageUnavailable,
            InvalidStateTransition,
        ),
    },
)
async def download(
    restore_id: UUID,
    services: ServicesDep,
    actor: Requester,
    restore_token: Annotated[
        str | None, Header(alias="X-Restore-Token", description="the restore's download token")
    ] = None,
) -> StreamingResponse:
    """Stream the restored plaintext, decrypted segment by segment. If a segment fails to
    authenticate, the connection is aborted: a client never receives a silently short file
    (check ``Content-Length`` and ``X-Content-SHA512``)."""
    stream = await services.restores.open_download(actor, restore_id, restore_token)
    return download_response(stream)


def download_response(stream: RestoreDownload) -> StreamingResponse:
    """The plaintext streamed as an attachment (also the web console's download)."""
    return StreamingResponse(
        stream.chunks,
        media_type=stream.content_type or "application/octet-stream",
        headers={
            "Content-Length": str(stream.size),
            "Content-Disposition": _content_disposition(stream.filename),
            "X-Content-SHA512": stream.checksum_plaintext,
            "Cache-Control": "no-store",
        },
    )
