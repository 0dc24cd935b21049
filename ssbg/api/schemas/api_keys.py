from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from ssbg.api.schemas.common import StoredDatetime, StrictInput
from ssbg.domain.enums import ApiKeyStatus, Role
from ssbg.domain.network import IP_NETWORK_PATTERN
from ssbg.infrastructure.db.models import ApiKey
from ssbg.services.api_key_service import IssuedApiKey, NewApiKey

Description = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)]
Department = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100)]
IpEntry = Annotated[
    str, StringConstraints(strict=True, min_length=2, max_length=64, pattern=IP_NETWORK_PATTERN)
]


class ApiKeyCreate(StrictInput):
    role: Role
    description: Description
    department: Department | None = None
    expires_at: StoredDatetime | None = None
    allowed_ips: list[IpEntry] = Field(default_factory=list, max_length=64)

    def to_request(self) -> NewApiKey:
        return NewApiKey(
            role=self.role,
            description=self.description,
            department=self.department,
            expires_at=self.expires_at,
            allowed_ips=self.allowed_ips,
        )


class ApiKeyOut(BaseModel):
    key_id: UUID
    role: Role
    status: ApiKeyStatus
    description: str
    department: str | None
    allowed_ips: list[str]
    expires_at: datetime | None
    created_at: datetime
    created_by: UUID | None
    revoked_at: datetime | None
    revoked_by: UUID | None
    last_used_at: datetime | None
    last_used_ip: str | None
    mfa_enrolled: bool

    @classmethod
    def of(cls, record: ApiKey, now: datetime) -> "ApiKeyOut":
        if record.revoked_at is not None:
            status = ApiKeyStatus.REVOKED
        elif record.expires_at is not None and record.expires_at <= now:
            status = ApiKeyStatus.EXPIRED
        else:
            status = ApiKeyStatus.ACTIVE
        return cls(
            key_id=record.id,
            role=record.role,
            status=status,
            description=record.description,
            department=record.department,
            allowed_ips=list(record.allowed_ips),
            expires_at=record.expires_at,
            created_at=record.created_at,
            created_by=record.created_by,
            revoked_at=record.revoked_at,
            revoked_by=record.revoked_by,
            last_used_at=record.last_used_at,
            last_used_ip=record.last_used_ip,
            mfa_enrolled=record.totp_secret_encrypted is not None,
        )


class ApiKeyCreated(ApiKeyOut):
    """Returned once, at creation: the only time the raw key and TOTP secret are shown."""

    api_key: str
    totp_secret: str | None
    totp_uri: str | None

    @classmethod
    def of_issued(cls, issued: IssuedApiKey, now: datetime) -> "ApiKeyCreated":
        return cls(
            **ApiKeyOut.of(issued.record, now).model_dump(),
            api_key=issued.api_key,
            totp_secret=issued.totp_secret,
            totp_uri=issued.totp_uri,
        )
