from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from ssbg.api.contract import header_ref
from ssbg.api.dependencies import MfaTokenDep, ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.pagination import CursorParam, decode_backup_cursor, encode_backup_cursor
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.backups import BackupFieldsIn, BackupOut, BackupStatusOut
from ssbg.api.schemas.common import Envelope, ListEnvelope, ListMeta, Meta, StoredDatetime
from ssbg.api.uploads import MultipartUpload, body_chunks, multipart_boundary
from ssbg.domain.backup_fields import (
    DEFAULT_COMPRESSION_LEVEL,
    DESCRIPTION_PATTERN,
    FILENAME_PATTERN,
    MAX_COMPRESSION_LEVEL,
    MAX_DESCRIPTION_LENGTH,
    MAX_FILENAME_LENGTH,
    MIN_COMPRESSION_LEVEL,
    SOURCE_SYSTEM_PATTERN,
)
from ssbg.domain.enums import BackupStatus, Classification, Compression
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    BackupNotFound,
    Conflict,
    DatabaseUnavailable,
    ForbiddenRole,
    IncidentLockdown,
    InvalidStateTransition,
    KeyUnavailable,
    PayloadTooLarge,
    PolicyDenied,
    StorageUnavailable,
    ValidationFailed,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission
from ssbg.domain.queries import BackupFilters

router = APIRouter(prefix="/backups", tags=["backups"])
Creator = Annotated[Actor, Depends(require(Permission.BACKUP_CREATE))]
Reader = Annotated[Actor, Depends(require(Permission.BACKUP_READ))]
Deleter = Annotated[Actor, Depends(require(Permission.BACKUP_DELETE))]
_AUTH = (AuthInvalidKey, ForbiddenRole)

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["classification", "source_system", "file"],
                    "properties": {
                        "classification": {"type": "string", "enum": list(Classification)},
                        "source_system": {"type": "string", "pattern": SOURCE_SYSTEM_PATTERN},
                        "description": {
                            "type": "string",
                            "maxLength": MAX_DESCRIPTION_LENGTH,
                            "pattern": DESCRIPTION_PATTERN,
                        },
                        "compression": {
                            "type": "string",
                            "enum": list(Compression),
                            "default": Compression.NONE.value,
                        },
                        "compression_level": {
                            "type": "integer",
                            "minimum": MIN_COMPRESSION_LEVEL,
                            "maximum": MAX_COMPRESSION_LEVEL,
                            "default": DEFAULT_COMPRESSION_LEVEL,
                        },
                        "file": {"type": "string", "format": "binary"},
                    },
                    "additionalProperties": False,
                },
                "encoding": {"file": {"contentType": "application/octet-stream"}},
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

_RAW_ONLY = (
    "With a raw (application/octet-stream) body only, where classification and source_system "
    "are then required; a multipart body carries the fields as form fields instead."
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "An identical request (same fields and payload) with the same key from the same "
            "API key returns the same backup; a different one is a 409 IDEMPOTENCY_MISMATCH."
        ),
    ),
]


def _location(request: Request, backup_id: UUID) -> str:
    return str(request.url_for("get_backup", backup_id=backup_id).path)


@router.post(
    "",
    status_code=201,
    response_model=Envelope[BackupOut],
    responses={
        201: {
            "headers": {
                "Location": header_ref("Location"),
                "Idempotent-Replayed": {
                    "description": "``true`` when an Idempotency-Key replayed an earlier backup.",
                    "required": False,
                    "schema": {"type": "string", "enum": ["true"]},
                },
            }
        },
        **error_responses(
            *_AUTH,
            AuthMfaRequired,
            AuthMfaInvalid,
            PolicyDenied,
            IncidentLockdown,
            Conflict,
            PayloadTooLarge,
            StorageUnavailable,
            DatabaseUnavailable,
            KeyUnavailable,
        ),
    },
    openapi_extra=_UPLOAD_BODY,
)
async def create_backup(
    request: Request,
    response: Response,
    services: ServicesDep,
    actor: Creator,
    classification: Annotated[Classification | None, Query(description=_RAW_ONLY)] = None,
    source_system: Annotated[
        str | None, Query(pattern=SOURCE_SYSTEM_PATTERN, description=_RAW_ONLY)
    ] = None,
    filename: Annotated[
        str | None,
        Query(max_length=MAX_FILENAME_LENGTH, pattern=FILENAME_PATTERN, description=_RAW_ONLY),
    ] = None,
    description: Annotated[
        str | None,
        Query(
            max_length=MAX_DESCRIPTION_LENGTH, pattern=DESCRIPTION_PATTERN, description=_RAW_ONLY
        ),
    ] = None,
    compression: Annotated[
        Compression | None,
        Query(description=f"{_RAW_ONLY} none (default) or zstd: compress before encryption."),
    ] = None,
    compression_level: Annotated[
        int | None,
        Query(
            ge=MIN_COMPRESSION_LEVEL,
            le=MAX_COMPRESSION_LEVEL,
            description=f"{_RAW_ONLY} With compression=zstd only (default "
            f"{DEFAULT_COMPRESSION_LEVEL}).",
        ),
    ] = None,
    idempotency_key: IdempotencyKey = None,
    mfa_token: MfaTokenDep = None,
) -> Envelope[BackupOut]:
    """Store a backup, encrypted before it reaches storage.

    Send either ``multipart/form-data`` with the fields ``classification``, ``source_system``,
    ``description`` and then the payload as the **last** part, ``file``; or the payload as the
    raw body (``application/octet-stream``) with the fields as query parameters (plus
    ``filename``). The body is streamed: nothing is buffered or written in clear.

    ``compression=zstd`` (optionally ``compression_level``, 1-19, default 3) compresses the
    payload before it is encrypted, segment by segment; a segment that does not shrink is
    stored raw. ``original_size`` and ``checksum_plaintext`` stay those of the payload sent;
    ``stored_size`` is what was stored after compression.

    201 (with ``Location``) only once the ciphertext is durably stored and the ``ACTIVE``
    record and its audit entries are committed.

    ``Idempotency-Key``: a request identical to the one that first used the key (same fields,
    same payload) gets that backup again (``Idempotent-Replayed: true``); a different one is
    ``409 CONFLICT`` with ``details.reason = "IDEMPOTENCY_MISMATCH"`` and is not stored.
    """
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    query = {
        "classification": classification.value if classification else None,
        "source_system": source_system,
        "description": description,
        "filename": filename,
        "compression": compression.value if compression else None,
        "compression_level": None if compression_level is None else str(compression_level),
    }
    if media_type == "multipart/form-data":
        misplaced = {name: "Send this as a form field." for name, v in query.items() if v}
        if misplaced:
            raise ValidationFailed(details=misplaced)
        upload = MultipartUpload(body_chunks(request), multipart_boundary(content_type))
        await upload.read_fields()
        fields = BackupFieldsIn.parse({**upload.fields, "filename": upload.filename})
        submission = fields.to_submission(upload.file_content_type)
        payload = upload.file_chunks()
    elif media_type == "application/x-www-form-urlencoded":
        raise ValidationFailed(
            "Send the payload as application/octet-stream or multipart/form-data.",
            {"content_type": "application/x-www-form-urlencoded is not a payload type"},
        )
    else:
        fields = BackupFieldsIn.parse(query)
        length = request.headers.get("content-length")
        declared = int(length) if length and length.isascii() and length.isdigit() else None
        submission = fields.to_submission(content_type or None, declared)
        payload = body_chunks(request)

    outcome = await services.backups.create_backup(
        actor,
        submission,
        payload,
        idempotency_key=idempotency_key,
        mfa_token=mfa_token,
    )
    response.headers["Location"] = _location(request, outcome.backup.id)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    meta = Meta(request_id=request_id_of(request.scope))
    return Envelope(data=BackupOut.of(outcome.backup), meta=meta)


@router.get("", response_model=ListEnvelope[BackupOut], responses=error_responses(*_AUTH))
async def list_backups(
    request: Request,
    services: ServicesDep,
    actor: Reader,
    classification: Classification | None = None,
    source_system: Annotated[str | None, Query(pattern=SOURCE_SYSTEM_PATTERN)] = None,
    status: BackupStatus | None = None,
    created_from: StoredDatetime | None = None,
    created_to: StoredDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorParam = None,
) -> ListEnvelope[BackupOut]:
    """Backups, newest first. Operators see only their own. Page with ``cursor``: pass the
    previous page's ``meta.next_cursor`` (``null`` on the last page). Pages stay consistent
    while new backups arrive: no row is repeated or skipped."""
    page = await services.backups.list_backups(
        actor,
        BackupFilters(
            classification=classification,
            source_system=source_system,
            status=status,
            created_from=created_from,
            created_to=created_to,
        ),
        decode_backup_cursor(cursor) if cursor else None,
        limit,
    )
    return ListEnvelope(
        data=[BackupOut.of(backup) for backup in page.items],
        meta=ListMeta(
            request_id=request_id_of(request.scope),
            next_cursor=encode_backup_cursor(page.next_cursor) if page.next_cursor else None,
        ),
    )


@router.get(
    "/{backup_id}",
    response_model=Envelope[BackupOut],
    responses=error_responses(*_AUTH, BackupNotFound),
)
async def get_backup(
    backup_id: UUID, request: Request, services: ServicesDep, actor: Reader
) -> Envelope[BackupOut]:
    """The metadata record of one backup (operators: their own only, else 404)."""
    backup = await services.backups.get_backup(actor, backup_id)
    return Envelope(data=BackupOut.of(backup), meta=Meta(request_id=request_id_of(request.scope)))


@router.get(
    "/{backup_id}/status",
    response_model=Envelope[BackupStatusOut],
    responses=error_responses(*_AUTH, BackupNotFound),
)
async def get_backup_status(
    backup_id: UUID, request: Request, services: ServicesDep, actor: Reader
) -> Envelope[BackupStatusOut]:
    """The lifecycle status and every persisted transition, oldest first."""
    view = await services.backups.get_status(actor, backup_id)
    return Envelope(
        data=BackupStatusOut.of(view.backup, view.transitions),
        meta=Meta(request_id=request_id_of(request.scope)),
    )


@router.delete(
    "/{backup_id}",
    response_model=Envelope[BackupOut],
    responses=error_responses(
        *_AUTH,
        AuthMfaRequired,
        AuthMfaInvalid,
        BackupNotFound,
        InvalidStateTransition,
        PolicyDenied,
        IncidentLockdown,
        StorageUnavailable,
    ),
)
async def delete_backup(
    backup_id: UUID,
    request: Request,
    services: ServicesDep,
    actor: Deleter,
    mfa_token: MfaTokenDep = None,
) -> Envelope[BackupOut]:
    """Remove the ciphertext from storage; the metadata stays, with status ``DELETED``."""
    backup = await services.backups.delete_backup(actor, backup_id, mfa_token=mfa_token)
    return Envelope(data=BackupOut.of(backup), meta=Meta(request_id=request_id_of(request.scope)))
