"""Who may do what (SPEC §1): the one table every route's authorisation reads.

Roles are not a strict ladder: an auditor reads everything but changes nothing, so it may not
submit backups although an operator may. Routes therefore declare a permission, and this
table maps permissions to roles.
"""

from enum import StrEnum

from ssbg.domain.enums import Role

_ALL = frozenset(Role)
_ADMINS = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
_REVIEWERS = frozenset({Role.AUDITOR, Role.ADMIN, Role.SUPER_ADMIN})


class Permission(StrEnum):
    IDENTITY_READ = "identity:read"
    BACKUP_CREATE = "backup:create"
    BACKUP_READ = "backup:read"
    BACKUP_READ_ALL = "backup:read_all"
    BACKUP_DELETE = "backup:delete"
    BACKUP_VERIFY = "backup:verify"
    BACKUP_RELEASE = "backup:release"
    BACKUP_HOLD = "backup:hold"
    RESTORE_REQUEST = "restore:request"
    RESTORE_APPROVE = "restore:approve"
    AUDIT_READ = "audit:read"
    POLICY_MANAGE = "policy:manage"
    RETENTION_MANAGE = "retention:manage"
    API_KEY_MANAGE = "api_key:manage"
    KEY_READ = "key:read"
    KEY_MANAGE = "key:manage"
    ALERT_READ = "alert:read"
    ALERT_MANAGE = "alert:manage"
    INCIDENT_READ = "incident:read"
    INCIDENT_SET = "incident:set"
    HEALTH_DETAILED = "health:detailed"


ROLE_PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.IDENTITY_READ: _ALL,
    Permission.BACKUP_CREATE: frozenset({Role.OPERATOR, Role.ADMIN, Role.SUPER_ADMIN}),
    Permission.BACKUP_READ: _ALL,
    Permission.BACKUP_READ_ALL: _REVIEWERS,
    Permission.BACKUP_DELETE: _ADMINS,
    Permission.BACKUP_VERIFY: _ADMINS,
    Permission.BACKUP_RELEASE: _ADMINS,
    Permission.BACKUP_HOLD: _ADMINS,
    Permission.RESTORE_REQUEST: _ADMINS,
    Permission.RESTORE_APPROVE: _ADMINS,
    Permission.AUDIT_READ: _REVIEWERS,
    Permission.POLICY_MANAGE: _ADMINS,
    Permission.RETENTION_MANAGE: _ADMINS,
    Permission.API_KEY_MANAGE: frozenset({Role.SUPER_ADMIN}),
    Permission.KEY_READ: _ADMINS,
    Permission.KEY_MANAGE: frozenset({Role.SUPER_ADMIN}),
    Permission.ALERT_READ: _ADMINS,
    Permission.ALERT_MANAGE: _ADMINS,
    Permission.INCIDENT_READ: _ADMINS,
    Permission.INCIDENT_SET: frozenset({Role.SUPER_ADMIN}),
    Permission.HEALTH_DETAILED: _ADMINS,
}


def is_allowed(role: Role, permission: Permission) -> bool:
    return role in ROLE_PERMISSIONS[permission]


# What still works at incident level 3 (LOCKDOWN, SPEC §13.2): investigators keep their view —
# who they are, the incident state, the alerts, the audit log (read, validate, export) and
# the detailed health — and nobody changes anything.
LOCKDOWN_PERMISSIONS = frozenset(
    {
        Permission.IDENTITY_READ,
        Permission.INCIDENT_READ,
        Permission.ALERT_READ,
        Permission.AUDIT_READ,
        Permission.HEALTH_DETAILED,
    }
)


def allowed_in_lockdown(permission: Permission) -> bool:
    return permission in LOCKDOWN_PERMISSIONS
