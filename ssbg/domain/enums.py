"""Enumerations of the contract (SPEC §1, §3, §5, §7).

Wire values are UPPER_SNAKE, roles lowercase.
"""

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"
    AUDITOR = "auditor"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"

    @property
    def requires_mfa_enrolment(self) -> bool:
        """Keys that may restore or change security state carry a TOTP secret."""
        return self in (Role.ADMIN, Role.SUPER_ADMIN)


class Classification(StrEnum):
    PUBLIC = "PUBLIC"
    INTERNAL = "INTERNAL"
    CONFIDENTIAL = "CONFIDENTIAL"
    SECRET = "SECRET"  # noqa: S105 (a classification label, not a credential)


class AuditResult(StrEnum):
    SUCCESS = "SUCCESS"
    DENIED = "DENIED"
    FAILED = "FAILED"
    ERROR = "ERROR"


class AuditAction(StrEnum):
    AUTH_FAILURE = "AUTH_FAILURE"
    AUTHZ_DENY = "AUTHZ_DENY"
    MFA_SUCCESS = "MFA_SUCCESS"
    MFA_FAILURE = "MFA_FAILURE"
    API_KEY_CREATE = "API_KEY_CREATE"
    API_KEY_REVOKE = "API_KEY_REVOKE"
    POLICY_CREATE = "POLICY_CREATE"
    POLICY_UPDATE = "POLICY_UPDATE"
    POLICY_CHECK_ALLOW = "POLICY_CHECK_ALLOW"
    POLICY_CHECK_DENY = "POLICY_CHECK_DENY"
    BACKUP_START = "BACKUP_START"
    BACKUP_STORED = "BACKUP_STORED"
    BACKUP_COMPLETE = "BACKUP_COMPLETE"
    BACKUP_FAILED = "BACKUP_FAILED"
    BACKUP_STATUS_CHANGE = "BACKUP_STATUS_CHANGE"
    BACKUP_DELETE = "BACKUP_DELETE"
    BACKUP_VERIFY = "BACKUP_VERIFY"
    BACKUP_RELEASE = "BACKUP_RELEASE"
    VERIFY_JOB_START = "VERIFY_JOB_START"
    VERIFY_JOB_COMPLETE = "VERIFY_JOB_COMPLETE"
    BACKUP_HOLD = "BACKUP_HOLD"
    BACKUP_HOLD_RELEASE = "BACKUP_HOLD_RELEASE"
    KEY_WRAP = "KEY_WRAP"
    KEY_UNWRAP = "KEY_UNWRAP"
    KEY_ROTATE = "KEY_ROTATE"
    KEY_DESTROY = "KEY_DESTROY"
    KEY_REWRAP = "KEY_REWRAP"
    KEY_FILE_UPGRADE = "KEY_FILE_UPGRADE"
    RESTORE_REQUEST = "RESTORE_REQUEST"
    RESTORE_APPROVED = "RESTORE_APPROVED"
    RESTORE_REJECTED = "RESTORE_REJECTED"
    RESTORE_DENIED = "RESTORE_DENIED"
    RESTORE_COMPLETE = "RESTORE_COMPLETE"
    RESTORE_FAILED = "RESTORE_FAILED"
    RESTORE_DOWNLOAD = "RESTORE_DOWNLOAD"
    AUDIT_READ = "AUDIT_READ"
    AUDIT_VALIDATE = "AUDIT_VALIDATE"
    AUDIT_EXPORT = "AUDIT_EXPORT"
    ALERT_TRIGGER = "ALERT_TRIGGER"
    ALERT_ACK = "ALERT_ACK"
    ALERT_INVESTIGATE = "ALERT_INVESTIGATE"
    ALERT_RESOLVE = "ALERT_RESOLVE"
    ALERT_ESCALATE = "ALERT_ESCALATE"
    INCIDENT_LEVEL_CHANGE = "INCIDENT_LEVEL_CHANGE"
    CRYPTO_SHRED_START = "CRYPTO_SHRED_START"
    CRYPTO_SHRED_COMPLETE = "CRYPTO_SHRED_COMPLETE"
    SYSTEM_START = "SYSTEM_START"
    INTEGRITY_ADOPT = "INTEGRITY_ADOPT"
    TAMPERING_DETECTED = "TAMPERING_DETECTED"
    AUTH_THROTTLED = "AUTH_THROTTLED"
    RETENTION_RULE_CREATE = "RETENTION_RULE_CREATE"
    RETENTION_RULE_UPDATE = "RETENTION_RULE_UPDATE"
    # A backup deleted by retention (not by hand: detection rule M8 counts BACKUP_DELETE only)
    RETENTION_DELETE = "RETENTION_DELETE"
    RETENTION_APPLY = "RETENTION_APPLY"
    # A web console session begun with an API key, and ended by its holder (SPEC §13.5): a
    # session is a credential of its own, so its creation is evidence, unlike one request's
    # successful authentication.
    CONSOLE_SIGN_IN = "CONSOLE_SIGN_IN"
    CONSOLE_SIGN_OUT = "CONSOLE_SIGN_OUT"


class KeyVersionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    RETIRED = "RETIRED"
    DESTROYED = "DESTROYED"


class PolicyEffect(StrEnum):
    DENY = "deny"
    REQUIRE_MFA = "require_mfa"


class PolicyOperation(StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"
    DELETE = "delete"
    CRYPTO_SHRED = "crypto_shred"


class ApiKeyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


class BackupStatus(StrEnum):
    PROCESSING = "PROCESSING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    QUARANTINED = "QUARANTINED"
    DELETED = "DELETED"
    CRYPTO_SHREDDED = "CRYPTO_SHREDDED"


class Compression(StrEnum):
    """How a backup's payload is compressed before it is encrypted (SPEC §13.4)."""

    NONE = "none"
    ZSTD = "zstd"


class BackupFailureReason(StrEnum):
    """Why an ingest ended ``FAILED`` (``details.reason`` of ``BACKUP_FAILED``)."""

    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    ENCRYPTION_FAILED = "ENCRYPTION_FAILED"
    CLIENT_DISCONNECTED = "CLIENT_DISCONNECTED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    INTERRUPTED = "INTERRUPTED"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # not a failed ingest: a refused request that reused an Idempotency-Key (nothing stored)
    IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_MISMATCH"
