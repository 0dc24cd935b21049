"""Who is calling, and from where: values every use case receives."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ssbg.domain.enums import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API key (never the raw key)."""

    key_id: UUID
    role: Role
    description: str
    department: str | None
    expires_at: datetime | None
    mfa_enrolled: bool


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str | None
    source_ip: str | None


SYSTEM_CONTEXT = RequestContext(request_id=None, source_ip=None)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a use case, and the request it came with."""

    principal: Principal
    context: RequestContext

    @property
    def key_id(self) -> UUID:
        return self.principal.key_id

    @property
    def role(self) -> Role:
        return self.principal.role
