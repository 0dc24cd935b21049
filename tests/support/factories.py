"""Plain async factories: create what a test needs through the real services."""

from datetime import datetime

import pyotp

from ssbg.domain.enums import Role
from ssbg.domain.identity import SYSTEM_CONTEXT, Actor, Principal, RequestContext
from ssbg.services.api_key_service import IssuedApiKey, NewApiKey
from ssbg.services.auth_service import principal_of
from ssbg.services.container import Services


async def create_api_key(
    services: Services,
    role: Role | str = Role.OPERATOR,
    *,
    description: str | None = None,
    department: str | None = None,
    expires_at: datetime | None = None,
    allowed_ips: list[str] | None = None,
) -> IssuedApiKey:
    role = Role(role)
    request = NewApiKey(
        role=role,
        description=description or f"test {role.value}",
        department=department,
        expires_at=expires_at,
        allowed_ips=allowed_ips or [],
    )
    async with services.db.transaction(write=True) as tx:
        return await services.api_keys.issue_in(tx, request, None)


def principal(issued: IssuedApiKey) -> Principal:
    return principal_of(issued.record)


def actor(issued: IssuedApiKey, context: RequestContext = SYSTEM_CONTEXT) -> Actor:
    """``issued`` calling a use case directly, from ``context``."""
    return Actor(principal_of(issued.record), context)


def headers(issued: IssuedApiKey, *, totp_at: datetime | None = None) -> dict[str, str]:
    """``X-API-Key`` for ``issued``; with ``totp_at``, also a TOTP code valid at that moment."""
    result = {"X-API-Key": issued.api_key}
    if totp_at is not None:
        assert issued.totp_secret is not None
        result["X-MFA-Token"] = pyotp.TOTP(issued.totp_secret).at(totp_at)
    return result
