"""Authentication (API keys), authorisation (roles) and MFA (TOTP), each audited.

One failure code for every kind of bad key (``AUTH_INVALID_KEY``): the caller learns nothing
about which keys exist. The audit entry says why, and never contains the presented key.
The key is checked first; only a failure is counted against its source address, which is
throttled (``429 RATE_LIMITED``) after too many (``services.auth_failures``): a valid key from
a throttled address still works.
A successful authentication is not an audit event (SPEC §7); ``last_used_at`` and
``last_used_ip`` record it, written at most once a minute per key across all replicas.
"""

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn
from uuid import UUID

from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent, api_key_resource
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import (
    AuthInvalidKey,
    AuthMfaInvalid,
    AuthMfaRequired,
    ForbiddenRole,
    TamperedRow,
)
from ssbg.domain.identity import Actor, Principal, RequestContext
from ssbg.domain.incident import IncidentLevel
from ssbg.domain.network import ip_allowed
from ssbg.domain.permissions import Permission, is_allowed
from ssbg.domain.restore_tokens import secret_digest
from ssbg.domain.totp import match_totp_step
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.crypto.secret_box import SecretBox
from ssbg.infrastructure.db.models import ApiKey
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_failures import AuthFailures
from ssbg.services.incident_service import effective_level
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

API_KEY_PATTERN = re.compile(r"ssbg_[0-9a-f]{32}")
LAST_USED_RESOLUTION = timedelta(minutes=1)


def principal_of(api_key: ApiKey) -> Principal:
    return Principal(
        key_id=api_key.id,
        role=api_key.role,
        description=api_key.description,
        department=api_key.department,
        expires_at=api_key.expires_at,
        mfa_enrolled=api_key.totp_secret_encrypted is not None,
    )


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """A presented API key's record, and why it may not be used (``refusal``: ``None`` if it
    may); ``tampered`` names a record whose seal did not match."""

    api_key: ApiKey | None
    refusal: str | None
    tampered: str | None = None
    incident_level: IncidentLevel | None = None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The caller's principal, and the incident level read with its key (``None`` when the
    incident state could not be read: whoever needs it reads it again, and fails closed)."""

    principal: Principal
    incident_level: IncidentLevel | None


class AuthService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        mfa_box: Callable[[], SecretBox],
        integrity: IntegrityKey,
        failure_limit: int,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._mfa_box = mfa_box
        self._integrity = integrity
        self._failures = AuthFailures(db, trail, clock, failure_limit)

    async def authenticate(self, raw_key: str | None, context: RequestContext) -> Authenticated:
        """The key's principal; else ``AuthInvalidKey`` — or ``AuthThrottled`` when the
        caller's address has failed too often (the same for every kind of bad key)."""
        check = await self._check_key(raw_key, context)
        if check.refusal is None and check.api_key is not None:
            await self._record_use(check.api_key, context)
            return Authenticated(principal_of(check.api_key), check.incident_level)
        await self._record_failure(
            check.api_key, check.refusal or "UNKNOWN", context, resource=check.tampered
        )
        raise AuthInvalidKey()

    async def authenticate_key_id(self, key_id: UUID, context: RequestContext) -> Authenticated:
        """The principal of the key a web console session was begun with, checked on every
        request exactly as a presented key is (revoked, expired, allow-listed addresses,
        sealed record), with a failure audited and counted the same way."""
        check = await self._check_key_record(context, key_id=key_id)
        if check.refusal is None and check.api_key is not None:
            await self._record_use(check.api_key, context)
            return Authenticated(principal_of(check.api_key), check.incident_level)
        await self._record_failure(
            check.api_key, check.refusal or "UNKNOWN", context, resource=check.tampered
        )
        raise AuthInvalidKey()

    async def refuse_tampered(self, resource: str, context: RequestContext) -> NoReturn:
        """Refuse a credential whose sealed record did not match (a web console session),
        audited and counted like a tampered API key record."""
        await self._record_failure(None, "TAMPERED", context, resource=resource)
        raise AuthInvalidKey()

    async def _check_key(self, raw_key: str | None, context: RequestContext) -> KeyCheck:
        """The presented key's record, and why it may not be used."""
        if not raw_key:
            return KeyCheck(None, "MISSING")
        if not API_KEY_PATTERN.fullmatch(raw_key):
            return KeyCheck(None, "MALFORMED")
        return await self._check_key_record(
            context, presented=self._integrity.verifier(secret_digest(raw_key))
        )

    async def _check_key_record(
        self, context: RequestContext, *, presented: str | None = None, key_id: UUID | None = None
    ) -> KeyCheck:
        """The record of the key with verifier ``presented`` (or id ``key_id``), and why it
        may not be used."""
        level = None
        try:
            async with self._db.transaction(write=False) as tx:
                if presented is not None:
                    api_key = await tx.api_keys.get_by_hash_or_none(presented)
                else:
                    assert key_id is not None
                    api_key = await tx.api_keys.get_or_none(key_id)
                if api_key is not None:
                    level = await self._incident_level(tx)
        except TamperedRow as row:
            # A key record changed behind the gateway (its role, expiry, addresses…): as if
            # it did not exist, and said so in the audit entry, which names it.
            return KeyCheck(None, "TAMPERED", tampered=row.resource)
        if api_key is None or (
            presented is not None and not hmac.compare_digest(api_key.key_hash, presented)
        ):
            return KeyCheck(None, "UNKNOWN")
        if api_key.revoked_at is not None:
            return KeyCheck(api_key, "REVOKED")
        if api_key.expires_at is not None and api_key.expires_at <= self._clock.now():
            return KeyCheck(api_key, "EXPIRED")
        if not ip_allowed(context.source_ip, api_key.allowed_ips):
            return KeyCheck(api_key, "IP_NOT_ALLOWED")
        return KeyCheck(api_key, None, incident_level=level)

    async def _incident_level(self, tx: UnitOfWork) -> IncidentLevel | None:
        """The effective incident level, read in the key's transaction (one statement more
        than the key, instead of a transaction more for the level-3 guard)."""
        try:
            state = await tx.system_state.get()
        except TamperedRow:
            return None  # not the key's fault: the guard reads it again and fails closed
        return effective_level(state, self._clock.now())

    async def _record_use(self, api_key: ApiKey, context: RequestContext) -> None:
        now = self._clock.now()
        stale_before = now - LAST_USED_RESOLUTION
        if api_key.last_used_at is not None and api_key.last_used_at >= stale_before:
            return
        async with self._db.transaction(write=True) as tx:
            await tx.api_keys.record_use(api_key.id, now, context.source_ip, stale_before)

    async def _record_failure(
        self,
        api_key: ApiKey | None,
        reason: str,
        context: RequestContext,
        *,
        resource: str | None = None,
    ) -> None:
        if resource is None:
            resource = api_key_resource(api_key.id) if api_key else SYSTEM_RESOURCE
        event = AuditEvent(
            action=AuditAction.AUTH_FAILURE,
            resource=resource,
            result=AuditResult.DENIED,
            actor_id=api_key.id if api_key else None,
            actor_role=api_key.role.value if api_key else None,
            details={"reason": reason},
            source_ip=context.source_ip,
            request_id=context.request_id,
        )
        await self._failures.record(event, evidence=reason == "TAMPERED")

    async def authorize(self, actor: Actor, permission: Permission) -> None:
        """Raise ``ForbiddenRole`` (after recording ``AUTHZ_DENY``) unless the role may act."""
        if is_allowed(actor.role, permission):
            return
        async with self._db.transaction(write=True) as tx:
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.AUTHZ_DENY,
                    api_key_resource(actor.key_id),
                    AuditResult.DENIED,
                    permission=permission.value,
                ),
            )
        raise ForbiddenRole()

    async def verify_mfa(self, actor: Actor, code: str | None) -> None:
        """Accept a TOTP code once (RFC 6238, ±1 step) or raise; both outcomes are audited."""
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            api_key = await tx.api_keys.get_or_none(actor.key_id)
            if not code:
                reason = "MISSING"
            elif api_key is None or api_key.totp_secret_encrypted is None:
                reason = "NOT_ENROLLED"
            else:
                secret = self._mfa_box().open(api_key.totp_secret_encrypted, api_key.id.bytes)
                step = match_totp_step(secret.decode("ascii"), code, now, api_key.totp_last_step)
                if step is not None and await tx.api_keys.claim_totp_step(api_key.id, step):
                    await self._trail.append(
                        tx,
                        AuditEvent.by(
                            actor,
                            AuditAction.MFA_SUCCESS,
                            api_key_resource(actor.key_id),
                        ),
                    )
                    return
                reason = "INVALID_OR_REPLAYED"
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.MFA_FAILURE,
                    api_key_resource(actor.key_id),
                    AuditResult.DENIED,
                    reason=reason,
                ),
            )
        if reason == "MISSING":
            raise AuthMfaRequired()
        raise AuthMfaInvalid()
