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
