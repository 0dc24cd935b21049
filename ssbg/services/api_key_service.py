"""Issuing and revoking API keys. Raw keys and TOTP secrets leave the gateway exactly once.

A ``super_admin`` key can do everything, MFA-guarded operations included: issuing one asks the
issuer for a TOTP code (SPEC §13.3), as any other MFA-guarded change does. There is no way to
re-enable a revoked key (revocation is final), so creation is the only way to a new one.
"""

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

import pyotp

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AuditEvent, api_key_resource
from ssbg.domain.enums import AuditAction, Role
from ssbg.domain.errors import InvalidStateTransition, NotFound, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.network import parse_networks
from ssbg.domain.restore_tokens import secret_digest
from ssbg.domain.totp import provisioning_uri
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.crypto.secret_box import SecretBox
from ssbg.infrastructure.db.models import ApiKey
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork


@dataclass(frozen=True)
class NewApiKey:
    role: Role
    description: str
    department: str | None = None
    expires_at: datetime | None = None
    allowed_ips: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IssuedApiKey:
    """The one object that ever holds a raw key or TOTP secret; shown once, never stored."""

    record: ApiKey
    api_key: str
    totp_secret: str | None
    totp_uri: str | None


def generate_raw_api_key() -> str:
    return f"ssbg_{secrets.token_hex(16)}"


class ApiKeyService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        mfa_box: Callable[[], SecretBox],
        integrity: IntegrityKey,
        auth: AuthService,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._mfa_box = mfa_box
        self._integrity = integrity
        self._auth = auth

    async def create_api_key(
        self, actor: Actor, request: NewApiKey, *, mfa_token: str | None = None
    ) -> IssuedApiKey:
        """Issue a key; a ``super_admin`` one only with the issuer's TOTP code (MFA audited)."""
        if request.role is Role.SUPER_ADMIN:
            await self._auth.verify_mfa(actor, mfa_token)
        async with self._db.transaction(write=True) as tx:
            return await self.issue_in(tx, request, actor)

    async def issue_in(
        self,
        tx: UnitOfWork,
        request: NewApiKey,
        actor: Actor | None,
        *,
        raw_key: str | None = None,
        totp_secret: str | None = None,
    ) -> IssuedApiKey:
        """Create a key inside ``tx`` (also used by bootstrap, where ``principal`` is None)."""
        now = self._clock.now()
        if request.expires_at is not None and request.expires_at <= now:
            raise ValidationFailed(details={"expires_at": "must be in the future"})
        try:
            parse_networks(request.allowed_ips)
        except ValueError:
            raise ValidationFailed(
                details={"allowed_ips": "each entry must be an IP address or CIDR block"}
            ) from None
        key_id = uuid4()
        raw_key = raw_key or generate_raw_api_key()
        if request.role.requires_mfa_enrolment:
            totp_secret = totp_secret or pyotp.random_base32(length=32)
            sealed: bytes | None = self._mfa_box().seal(totp_secret.encode("ascii"), key_id.bytes)
        else:
            totp_secret, sealed = None, None
        record = ApiKey(
            id=key_id,
            key_hash=self._integrity.verifier(secret_digest(raw_key)),
            role=request.role,
            description=request.description,
            department=request.department,
            allowed_ips=list(request.allowed_ips),
            expires_at=request.expires_at,
            created_at=now,
            created_by=actor.key_id if actor else None,
            totp_secret_encrypted=sealed,
        )
        tx.api_keys.add(record)
        await self._trail.append(
            tx,
            AuditEvent.by(
                actor,
                AuditAction.API_KEY_CREATE,
                api_key_resource(key_id),
                role=request.role.value,
                description=request.description,
                department=request.department,
                expires_at=format_timestamp(request.expires_at) if request.expires_at else None,
                allowed_ips=list(request.allowed_ips),
                mfa_enrolled=sealed is not None,
            ),
        )
        return IssuedApiKey(
            record=record,
            api_key=raw_key,
            totp_secret=totp_secret,
            totp_uri=provisioning_uri(totp_secret, str(key_id)) if totp_secret else None,
        )

    async def list_api_keys(self) -> Sequence[ApiKey]:
        async with self._db.transaction(write=False) as tx:
            return await tx.api_keys.list_keys()

    async def get_api_key(self, key_id: UUID) -> ApiKey:
        async with self._db.transaction(write=False) as tx:
            record = await tx.api_keys.get_or_none(key_id)
        if record is None:
            raise NotFound("API key not found.")
        return record

    async def revoke_api_key(self, actor: Actor, key_id: UUID, reason: str | None) -> ApiKey:
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            record = await tx.api_keys.get_or_none(key_id)
            if record is None:
                raise NotFound("API key not found.")
            if record.revoked_at is not None:
                raise InvalidStateTransition("The API key is already revoked.")
            if (
                record.role is Role.SUPER_ADMIN
                and await tx.api_keys.count_usable_with_role(Role.SUPER_ADMIN, now) <= 1
            ):
                raise InvalidStateTransition(
                    "Refusing to revoke the last usable super_admin key: create another first."
                )
            record.revoked_at = now
            record.revoked_by = actor.key_id
            record.revoke_reason = reason
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.API_KEY_REVOKE,
                    api_key_resource(key_id),
                    role=record.role.value,
                    reason=reason,
                ),
            )
        return record
