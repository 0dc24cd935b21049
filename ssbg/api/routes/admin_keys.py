"""Key versions (SPEC §13.1): inventory, rotation, rewrap and crypto-shredding."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.convertors import Convertor, register_url_convertor

from ssbg.api.dependencies import ServicesDep, require
from ssbg.api.errors import error_responses
from ssbg.api.request_context import request_id_of
from ssbg.api.schemas.common import Envelope, ListEnvelope, ListMeta, Meta
from ssbg.api.schemas.keys import (
    KeyDetailOut,
    KeyOut,
    KeyRewrap,
    KeyRotate,
    KeyShred,
    RewrapOut,
    RotationOut,
    ShredOut,
)
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    CryptoShredded,
    ForbiddenRole,
    IncidentLockdown,
    InvalidStateTransition,
    KeyUnavailable,
    NotFound,
    PolicyDenied,
    StorageUnavailable,
)
from ssbg.domain.identity import Actor
from ssbg.domain.permissions import Permission

router = APIRouter(prefix="/admin/keys", tags=["admin: keys"])
Reader = Annotated[Actor, Depends(require(Permission.KEY_READ))]
Manager = Annotated[Actor, Depends(require(Permission.KEY_MANAGE, mfa=True))]
VERSION_PATTERN = "P-[0-9]{3,6}"


class _KeyVersionConvertor(Convertor[str]):
    """``{version:key_version}`` matches a key version only: ``/admin/keys/rotate`` is then
    never a ``GET`` of a version called ``rotate``, so its 405 ``Allow`` is just ``POST``."""

    regex = VERSION_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("key_version", _KeyVersionConvertor())
VersionPath = Annotated[str, Path(pattern=f"^{VERSION_PATTERN}$", description="e.g. P-001")]
_READ = (AuthInvalidKey, ForbiddenRole)
_MANAGE = (*_READ, AuthMfaRequired, AuthMfaInvalid)


def _meta(request: Request) -> Meta:
    return Meta(request_id=request_id_of(request.scope))


@router.get("", response_model=ListEnvelope[KeyOut], responses=error_responses(*_READ))
async def list_keys(
    request: Request, services: ServicesDep, _actor: Reader
) -> ListEnvelope[KeyOut]:
    """Every key version: status, times, public key fingerprint and what it protects."""
    views = await services.keys.list_keys()
    return ListEnvelope(
        data=[KeyOut.of(view) for view in views],
        meta=ListMeta(request_id=request_id_of(request.scope), total=len(views)),
    )


@router.get(
    "/{version:key_version}",
    response_model=Envelope[KeyDetailOut],
    responses=error_responses(*_READ, NotFound),
)
async def get_key(
    version: VersionPath, request: Request, services: ServicesDep, _actor: Reader
) -> Envelope[KeyDetailOut]:
    """One key version; once destroyed, with its signed destruction certificate."""
    view = await services.keys.get_key(version)
    return Envelope(data=KeyDetailOut.of_detail(view), meta=_meta(request))


@router.post(
    "/rotate",
    status_code=201,
    response_model=Envelope[RotationOut],
    responses=error_responses(*_MANAGE, InvalidStateTransition, KeyUnavailable),
)
async def rotate(
    body: KeyRotate, request: Request, services: ServicesDep, actor: Manager
) -> Envelope[RotationOut]:
    """A new key version becomes ACTIVE (its key pair written to the key store first); the
    previous one is RETIRED and still unwraps its backups. Nothing is re-encrypted."""
    rotation = await services.keys.rotate(actor, body.reason)
    return Envelope(
        data=RotationOut(
            version=rotation.version.version,
            status=rotation.version.status,
            previous=rotation.previous,
        ),
        meta=_meta(request),
    )


@router.post(
    "/rewrap",
    response_model=Envelope[RewrapOut],
    responses=error_responses(
        *_MANAGE,
        NotFound,
        InvalidStateTransition,
        CryptoShredded,
        KeyUnavailable,
        StorageUnavailable,
    ),
)
async def rewrap(
    body: KeyRewrap, request: Request, services: ServicesDep, actor: Manager
) -> Envelope[RewrapOut]:
    """Seal the DEK of every backup under ``from_version`` to the active version again (only
    ``dek.wrapped`` changes). Resumable: a second call finishes what an interrupted one left."""
    result = await services.keys.rewrap(actor, body.from_version, body.reason)
    return Envelope(
        data=RewrapOut(
            from_version=result.from_version,
            to_version=result.to_version,
            rewrapped=result.rewrapped,
        ),
        meta=_meta(request),
    )


@router.post(
    "/{version:key_version}/crypto-shred",
    response_model=Envelope[ShredOut],
    responses=error_responses(
        *_MANAGE, NotFound, InvalidStateTransition, PolicyDenied, IncidentLockdown
    ),
)
async def crypto_shred(
    version: VersionPath,
    body: KeyShred,
    request: Request,
    services: ServicesDep,
    actor: Manager,
) -> Envelope[ShredOut]:
    """Destroy a (retired) key version and make every backup it protects unrecoverable —
    irreversibly. ``confirmation`` must be ``DESTROY <version>``. Returns the signed
    destruction certificate."""
    shred = await services.keys.crypto_shred(actor, version, body.confirmation, body.reason)
    return Envelope(
        data=ShredOut(
            version=shred.version.version,
            status=shred.version.status,
            backups_shredded=len(shred.certificate["backups"]),
            certificate=shred.certificate,
        ),
        meta=_meta(request),
    )
