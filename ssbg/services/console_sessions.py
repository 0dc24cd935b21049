"""Web console sessions (SPEC §13.5): sign-in with an API key, resume on every request,
sign-out; and the CSRF tokens of the console's forms.

The rules (verifiers, expiry, derived CSRF tokens) are in ``ssbg.domain.console_sessions``.
Everything about the key goes through :class:`~ssbg.services.auth_service.AuthService`: a
sign-in is an authentication like an API request's (a failure is audited, counted and
throttled the same way), and every later request checks the key behind the session again, so
a revoked or expired key, or a request from outside its allow-list, ends the session.

Sign-in and sign-out are audited (``CONSOLE_SIGN_IN``, ``CONSOLE_SIGN_OUT``, resource the
key), each in the transaction that creates or ends the session.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from ssbg.domain.audit_chain import format_timestamp
from ssbg.domain.audit_events import AuditEvent, api_key_resource
from ssbg.domain.console_sessions import (
    SessionEnd,
    SessionTimes,
    is_session_secret,
    new_session_secret,
    session_end,
    touch_due,
)
from ssbg.domain.enums import AuditAction
from ssbg.domain.errors import AuthInvalidKey, TamperedRow
from ssbg.domain.identity import Actor, RequestContext
from ssbg.domain.restore_tokens import secret_digest
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.db.models import ConsoleSession
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import Authenticated, AuthService
from ssbg.services.unit_of_work import AppDatabase

SESSION_FORMS = "console-session"
SIGN_IN_FORM = "console-sign-in"
VIA = "console"


@dataclass(frozen=True, slots=True)
class ResumedSession:
    """A live session: its verifier, the caller as the API would see it, its CSRF token."""

    session_id: str
    authenticated: Authenticated
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    secret: str  # for the cookie only; never stored, never logged
    expires_at: datetime


class ConsoleSessionService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        integrity: IntegrityKey,
        auth: AuthService,
        *,
        idle: timedelta,
        lifetime: timedelta,
    ) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock
        self._integrity = integrity
        self._auth = auth
        self.idle = idle
        self.lifetime = lifetime

    # -- CSRF -----------------------------------------------------------------------------

    def sign_in_token(self, sign_in_secret: str) -> str:
        """The ``csrf_token`` of the sign-in form, bound to the browser's sign-in cookie."""
        return self._integrity.form_token(SIGN_IN_FORM, secret_digest(sign_in_secret))

    def sign_in_token_matches(self, sign_in_secret: str | None, presented: str | None) -> bool:
        if not is_session_secret(sign_in_secret):
            return False
        assert sign_in_secret is not None
        digest = secret_digest(sign_in_secret)
        return self._integrity.form_token_matches(SIGN_IN_FORM, digest, presented)

    def session_token_matches(self, secret: str, presented: str | None) -> bool:
        return self._integrity.form_token_matches(SESSION_FORMS, secret_digest(secret), presented)

    def _verifier(self, secret: str) -> str:
        return self._integrity.verifier(secret_digest(secret))

    # -- the session's life ---------------------------------------------------------------

    async def sign_in(self, raw_key: str | None, context: RequestContext) -> NewSession:
        """A new session for a valid key; else ``AuthInvalidKey`` or ``AuthThrottled``, the
        failure audited and counted against the address exactly as over the API."""
        authenticated = await self._auth.authenticate(raw_key, context)
        actor = Actor(authenticated.principal, context)
        now = self._clock.now()
        secret = new_session_secret()
        session = ConsoleSession(
            id=self._verifier(secret),
            key_id=actor.key_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.lifetime,
            revoked_at=None,
            source_ip=context.source_ip,
        )
        async with self._db.transaction(write=True) as tx:
            await tx.console_sessions.add(session)
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.CONSOLE_SIGN_IN,
                    api_key_resource(actor.key_id),
                    via=VIA,
                    expires_at=format_timestamp(session.expires_at),
                ),
            )
        return NewSession(secret=secret, expires_at=session.expires_at)

    async def resume(self, secret: str | None, context: RequestContext) -> ResumedSession | None:
        """The live session of ``secret``; ``None`` when there is none (no cookie, unknown,
        ended). ``AuthInvalidKey`` (audited) when its key may no longer be used — the session
        is then ended — or its record was changed behind the gateway."""
        if not is_session_secret(secret):
            return None
        assert secret is not None
        session_id = self._verifier(secret)
        try:
            async with self._db.transaction(write=False) as tx:
                session = await tx.console_sessions.get_or_none(session_id)
        except TamperedRow as row:
            await self._auth.refuse_tampered(row.resource, context)
        now = self._clock.now()
        if session is None or self._end_of(session, now) is not None:
            return None
        try:
            authenticated = await self._auth.authenticate_key_id(session.key_id, context)
        except AuthInvalidKey:
            await self._end(session_id, now)
            raise
        if touch_due(session.last_seen_at, now):
            await self._touch(session_id, now)
        return ResumedSession(
            session_id=session_id,
            authenticated=authenticated,
            csrf_token=self._integrity.form_token(SESSION_FORMS, secret_digest(secret)),
            expires_at=session.expires_at,
        )

    async def sign_out(self, session: ResumedSession, context: RequestContext) -> None:
        actor = Actor(session.authenticated.principal, context)
        async with self._db.transaction(write=True) as tx:
            row = await tx.console_sessions.get_for_update_or_none(session.session_id)
            if row is None or row.revoked_at is not None:
                return
            row.revoked_at = self._clock.now()
            await tx.console_sessions.flush()
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor, AuditAction.CONSOLE_SIGN_OUT, api_key_resource(actor.key_id), via=VIA
                ),
            )

    def _end_of(self, session: ConsoleSession, now: datetime) -> SessionEnd | None:
        times = SessionTimes(session.last_seen_at, session.expires_at, session.revoked_at)
        return session_end(times, self.idle, now)

    async def _touch(self, session_id: str, now: datetime) -> None:
        async with self._db.transaction(write=True) as tx:
            row = await tx.console_sessions.get_for_update_or_none(session_id)
            if row is not None and touch_due(row.last_seen_at, now) and row.last_seen_at < now:
                row.last_seen_at = now
                await tx.console_sessions.flush()

    async def _end(self, session_id: str, now: datetime) -> None:
        """End a session whose key failed its check (the failure itself is audited)."""
        async with self._db.transaction(write=True) as tx:
            row = await tx.console_sessions.get_for_update_or_none(session_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = now
                await tx.console_sessions.flush()
