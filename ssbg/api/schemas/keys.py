from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

from ssbg.api.schemas.common import StrictInput
from ssbg.domain.enums import KeyVersionStatus
from ssbg.services.keys import KeyView

Reason = Annotated[str, StringConstraints(strict=True, min_length=3, max_length=1000)]
Version = Annotated[str, StringConstraints(strict=True, pattern=r"^P-\d{3,6}$")]


class KeyRotate(StrictInput):
    reason: Reason


class KeyRewrap(StrictInput):
    from_version: Version
    reason: Reason


class KeyShred(StrictInput):
    confirmation: Annotated[str, StringConstraints(strict=True, max_length=40)] | None = None
    reason: Reason


class ProtectedBackups(BaseModel):
    count: int
    bytes: int


class KeyOut(BaseModel):
    """A key version, never its key material: the public key by its SHA-256 only."""

    version: str
    status: KeyVersionStatus
    algorithm: str
    created_at: datetime
    retired_at: datetime | None
    destroyed_at: datetime | None
    public_key_sha256: str
    backups: ProtectedBackups

    @classmethod
    def of(cls, view: KeyView) -> "KeyOut":
        record = view.record
        return cls(
            version=record.version,
            status=record.status,
            algorithm=record.algorithm,
            created_at=record.created_at,
            retired_at=record.retired_at,
            destroyed_at=record.destroyed_at,
            public_key_sha256=record.fingerprint,
            backups=ProtectedBackups(count=view.backups, bytes=view.bytes),
        )


class KeyDetailOut(KeyOut):
    destruction_certificate: dict[str, Any] | None = None

    @classmethod
    def of_detail(cls, view: KeyView) -> "KeyDetailOut":
        return cls(
            **KeyOut.of(view).model_dump(),
            destruction_certificate=view.record.destruction_certificate,
        )


class RotationOut(BaseModel):
    version: str
    status: KeyVersionStatus
    previous: str


class RewrapOut(BaseModel):
    from_version: str
    to_version: str
    rewrapped: int


class ShredOut(BaseModel):
    version: str
    status: KeyVersionStatus
    backups_shredded: int
    certificate: dict[str, Any]
