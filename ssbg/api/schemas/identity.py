from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from ssbg.domain.enums import Role
from ssbg.domain.identity import Principal


class MeOut(BaseModel):
    key_id: UUID
    role: Role
    description: str
    department: str | None
    expires_at: datetime | None
    mfa_enrolled: bool

    @classmethod
    def of(cls, principal: Principal) -> "MeOut":
        return cls(
            key_id=principal.key_id,
            role=principal.role,
            description=principal.description,
            department=principal.department,
            expires_at=principal.expires_at,
            mfa_enrolled=principal.mfa_enrolled,
        )
