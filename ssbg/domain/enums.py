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
    KEY_WRAP = "KEY_WRAP"
    KEY_UNWRAP = "KEY_UNWRAP"
    KEY_ROTATE = "KEY_ROTATE"
    KEY_DESTROY = "KEY_DESTROY"
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
    ALERT_RESOLVE = "ALERT_RESOLVE"
    ALERT_ESCALATE = "ALERT_ESCALATE"
    INCIDENT_LEVEL_CHANGE = "INCIDENT_LEVEL_CHANGE"
    CRYPTO_SHRED_START = "CRYPTO_SHRED_START"
    CRYPTO_SHRED_COMPLETE = "CRYPTO_SHRED_COMPLETE"
    SYSTEM_START = "SYSTEM_START"


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


class ApiKeyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
