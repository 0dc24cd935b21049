"""The error contract (SPEC §4) as exceptions that carry meaning.

Every layer raises these; the API renders them in one place. ``message`` is meant for the
caller and therefore never carries library text, key material or payload bytes.
"""

from typing import Any, ClassVar


class SsbgError(Exception):
    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(SsbgError):
    code, status, default_message = "VALIDATION_ERROR", 422, "The request is not valid."


class AuthInvalidKey(SsbgError):
    code, status, default_message = "AUTH_INVALID_KEY", 401, "Missing or invalid API key."


class AuthMfaRequired(SsbgError):
    code, status, default_message = (
        "AUTH_MFA_REQUIRED",
        401,
        "A TOTP code is required in the X-MFA-Token header.",
    )


class AuthMfaInvalid(SsbgError):
    code, status, default_message = "AUTH_MFA_INVALID", 401, "The TOTP code is wrong or was used."


class ForbiddenRole(SsbgError):
    code, status, default_message = (
        "FORBIDDEN_ROLE",
        403,
        "The role of this API key may not perform this operation.",
    )


class PolicyDenied(SsbgError):
    code, status, default_message = "POLICY_DENIED", 403, "Denied by policy."


class NotFound(SsbgError):
    code, status, default_message = "NOT_FOUND", 404, "Not found."


class BackupNotFound(NotFound):
    code, default_message = "BACKUP_NOT_FOUND", "Backup not found."


class RestoreNotFound(NotFound):
    code, default_message = "RESTORE_NOT_FOUND", "Restore request not found."


class MethodNotAllowed(SsbgError):
    code, status, default_message = (
        "METHOD_NOT_ALLOWED",
        405,
        "Method not allowed on this resource.",
    )

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        allowed_methods: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(message, details)
        self.allowed_methods = allowed_methods


class InvalidStateTransition(SsbgError):
    code, status, default_message = (
        "INVALID_STATE_TRANSITION",
        409,
        "The resource is not in a state that allows this operation.",
    )


class Conflict(SsbgError):
    """A uniqueness rule would be broken (for example a policy name already in use)."""

    code, status, default_message = "CONFLICT", 409, "Conflicts with an existing resource."


class PayloadTooLarge(SsbgError):
    code, status, default_message = "PAYLOAD_TOO_LARGE", 413, "The payload is too large."


class CryptoShredded(SsbgError):
    code, status, default_message = (
        "CRYPTO_SHREDDED",
        410,
        "The key version of this backup was destroyed.",
    )


class RestoreTokenExpired(SsbgError):
    code, status, default_message = "RESTORE_TOKEN_EXPIRED", 410, "The download token expired."


class IncidentLockdown(SsbgError):
    code, status, default_message = (
        "INCIDENT_LOCKDOWN",
        423,
        "The gateway is in incident lockdown.",
    )


class RateLimited(SsbgError):
    code, status, default_message = "RATE_LIMITED", 429, "Rate limit reached."

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        retry_after_seconds: int = 60,
    ) -> None:
        super().__init__(message, details)
        self.retry_after_seconds = retry_after_seconds


class AuthThrottled(RateLimited):
    """Too many failed authentications from one source address (SPEC §13.2): its failing
    requests are refused without an audit entry each."""

    default_message = "Too many failed authentications from this address."


class IntegrityFailure(SsbgError):
    code, status, default_message = (
        "INTEGRITY_FAILURE",
        500,
        "Integrity verification failed.",
    )


class TamperedRow(IntegrityFailure):
    """A stored row whose seal does not match its fields: written by someone without the key
    store (SPEC §13.7). Never acted on; the event is audited."""

    default_message = "A stored record failed its integrity check; nothing was done."

    def __init__(self, table: str, resource: str) -> None:
        super().__init__(details={"resource": resource})
        self.table = table
        self.resource = resource


class StorageUnavailable(SsbgError):
    code, status, default_message = "STORAGE_UNAVAILABLE", 503, "The object store is unavailable."


class DatabaseUnavailable(SsbgError):
    code, status, default_message = "DATABASE_UNAVAILABLE", 503, "The database is unavailable."


class KeyUnavailable(SsbgError):
    code, status, default_message = "KEY_UNAVAILABLE", 503, "Key material is unavailable."


class AuditUnavailable(SsbgError):
    """The audit entry could not be written: the operation must not succeed (fail closed)."""

    code, status, default_message = (
        "DATABASE_UNAVAILABLE",
        503,
        "The audit log could not be written.",
    )


class ValidationNotRecorded(AuditUnavailable):
    """The chain was validated, but ``AUDIT_VALIDATE`` could not be appended — possibly because
    of the very damage the validation found (an entry planted past the head makes every append
    fail). Fail closed, yet hand the finding over: hiding it would let an attacker blind the
    validator by breaking appends."""

    default_message = "The validation ran but could not be recorded in the audit log."

    def __init__(self, result: Any) -> None:
        super().__init__(details={"validation": result.as_dict()})
        self.result = result


class BundleMalformed(SsbgError):
    """An evidence bundle that cannot be read as the documented format (not a verdict on the
    chain it carries: a readable bundle with wrong content is an invalid chain instead)."""

    code, status, default_message = (
        "BUNDLE_MALFORMED",
        422,
        "The evidence bundle is not in the documented format.",
    )


class InternalError(SsbgError):
    pass


class ClientDisconnected(SsbgError):
    """The client went away before its request body was complete (nobody reads the reply)."""

    code, status, default_message = (
        "CLIENT_DISCONNECTED",
        400,
        "The client disconnected before the request was complete.",
    )
