import pytest

from ssbg.domain.enums import Role
from ssbg.domain.permissions import ROLE_PERMISSIONS, Permission, is_allowed


def test_every_permission_is_mapped() -> None:
    assert set(ROLE_PERMISSIONS) == set(Permission)


def test_auditor_reads_everything_but_changes_nothing() -> None:
    assert is_allowed(Role.AUDITOR, Permission.AUDIT_READ)
    assert is_allowed(Role.AUDITOR, Permission.BACKUP_READ_ALL)
    changing = {
        Permission.BACKUP_CREATE,
        Permission.BACKUP_DELETE,
        Permission.BACKUP_VERIFY,
        Permission.BACKUP_RELEASE,
        Permission.RESTORE_REQUEST,
        Permission.POLICY_MANAGE,
        Permission.API_KEY_MANAGE,
        Permission.KEY_MANAGE,
        Permission.INCIDENT_SET,
    }
    assert not any(is_allowed(Role.AUDITOR, permission) for permission in changing)


def test_operator_submits_backups_and_reads_only_its_own() -> None:
    assert is_allowed(Role.OPERATOR, Permission.BACKUP_CREATE)
    assert not is_allowed(Role.OPERATOR, Permission.BACKUP_READ_ALL)
    assert not is_allowed(Role.OPERATOR, Permission.AUDIT_READ)


def test_only_super_admin_manages_keys_and_incident_level() -> None:
    for permission in (Permission.API_KEY_MANAGE, Permission.KEY_MANAGE, Permission.INCIDENT_SET):
        assert [role for role in Role if is_allowed(role, permission)] == [Role.SUPER_ADMIN]


def test_super_admin_may_do_everything_admin_may() -> None:
    for permission in Permission:
        if is_allowed(Role.ADMIN, permission):
            assert is_allowed(Role.SUPER_ADMIN, permission)


# Every role against every permission, written out (SPEC §1), so that any change to the table
# fails here by name. The HTTP matrix (tests/integration/api/test_rbac_matrix.py) then checks
# one allowed and one refused role per route.
OP, AU, AD, SA = Role.OPERATOR, Role.AUDITOR, Role.ADMIN, Role.SUPER_ADMIN
EXPECTED: dict[Permission, set[Role]] = {
    Permission.IDENTITY_READ: {OP, AU, AD, SA},
    Permission.BACKUP_CREATE: {OP, AD, SA},
    Permission.BACKUP_READ: {OP, AU, AD, SA},
    Permission.BACKUP_READ_ALL: {AU, AD, SA},
    Permission.BACKUP_DELETE: {AD, SA},
    Permission.BACKUP_VERIFY: {AD, SA},
    Permission.BACKUP_RELEASE: {AD, SA},
    Permission.BACKUP_HOLD: {AD, SA},
    Permission.RESTORE_REQUEST: {AD, SA},
    Permission.RESTORE_APPROVE: {AD, SA},
    Permission.AUDIT_READ: {AU, AD, SA},
    Permission.POLICY_MANAGE: {AD, SA},
    Permission.RETENTION_MANAGE: {AD, SA},
    Permission.API_KEY_MANAGE: {SA},
    Permission.KEY_READ: {AD, SA},
    Permission.KEY_MANAGE: {SA},
    Permission.ALERT_READ: {AD, SA},
    Permission.ALERT_MANAGE: {AD, SA},
    Permission.INCIDENT_READ: {AD, SA},
    Permission.INCIDENT_SET: {SA},
    Permission.HEALTH_DETAILED: {AD, SA},
}


def test_the_expected_table_names_every_permission() -> None:
    assert set(EXPECTED) == set(Permission)


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
@pytest.mark.parametrize("permission", list(Permission), ids=lambda permission: permission.value)
def test_every_role_against_every_permission(permission: Permission, role: Role) -> None:
    assert is_allowed(role, permission) is (role in EXPECTED[permission])
