"""Applying retention over the API (SPEC §13.4): a dry run plans and changes nothing; a real
run deletes exactly the plan through the deletion lifecycle (DELETED, objects removed, audited
with the rules), never a backup no rule matches, a held one or a quarantined one."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from sqlalchemy import update

from ssbg.domain.enums import BackupStatus, Role
from ssbg.infrastructure.db.models import RetentionRule
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.backups.deletion import Expired
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries, head_sequence
from tests.support.audit_chain import execute
from tests.support.backups import get_record, objects_left
from tests.support.clock import FixedClock
from tests.support.factories import actor, create_api_key, headers
from tests.support.retention import (
    apply_retention,
    backups_at,
    create_rule,
    ids,
    place_hold,
    quarantine,
    release_hold,
    status_of,
)

pytestmark = pytest.mark.both_backends

FIRST = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def days(count: int, start: datetime = FIRST) -> list[datetime]:
    return [start + timedelta(days=n) for n in range(count)]


async def ten_days_of_databases_and_a_web_server(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> tuple[list[str], list[str]]:
    """Ten daily backups of ``db-prod-1``, oldest first, and two of ``web-1`` (no rule
    matches it); the clock then stands ten days after the last."""
    operator = await create_api_key(services, Role.OPERATOR)
    databases = await backups_at(client, clock, operator, days(10))
    web = await backups_at(client, clock, operator, days(2), source_system="web-1")
    clock.set(FIRST + timedelta(days=20))
    return databases, web


async def test_a_dry_run_plans_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    databases, web = await ten_days_of_databases_and_a_web_server(client, services, clock)
    await create_rule(client, admin, keep_last=3)
    head = await head_sequence(services.db)

    response = await apply_retention(client, admin, dry_run=True)

    assert response.status_code == 200, response.text
    plan = response.json()["data"]
    assert plan["dry_run"] is True
    assert plan["rules"] == ["keep-3"]
    assert plan["summary"] == {
        "deleted": 7,
        "kept": 3,
        "skipped": 0,
        "not_matched": 2,
        "objects_pending": 0,
    }
    assert ids(plan["deleted"]) == databases[:7]
    assert {tuple(entry["matched_rules"]) for entry in plan["deleted"]} == {("keep-3",)}
    assert ids(plan["kept"]) == databases[7:]
    assert [entry["kept_by"] for entry in plan["kept"]] == [{"keep-3": ["last"]}] * 3
    assert plan["skipped"] == []
    assert plan["deleted"][0]["created_at"] == "2026-11-01T03:00:00Z"
    assert await head_sequence(services.db) == head
    for backup_id in databases + web:
        assert await status_of(services, backup_id) is BackupStatus.ACTIVE
        assert len(await objects_left(services, backup_id)) == 2


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_a_run_deletes_exactly_the_plan_audited_with_its_rules_and_without_m8(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    databases, web = await ten_days_of_databases_and_a_web_server(client, services, clock)
    await create_rule(client, admin, keep_last=3)
    planned = (await apply_retention(client, admin, dry_run=True)).json()["data"]

    response = await apply_retention(client, admin, dry_run=False)
    again = await apply_retention(client, admin, dry_run=False)

    assert response.status_code == 200, response.text
    done = response.json()["data"]
    assert done["dry_run"] is False
    assert ids(done["deleted"]) == ids(planned["deleted"]) == databases[:7]
    assert ids(done["kept"]) == ids(planned["kept"])
    assert done["summary"]["objects_pending"] == 0
    for backup_id in databases[:7]:
        assert await status_of(services, backup_id) is BackupStatus.DELETED
        assert await objects_left(services, backup_id) == []
    for backup_id in databases[7:] + web:
        assert await status_of(services, backup_id) is BackupStatus.ACTIVE
        assert len(await objects_left(services, backup_id)) == 2
    deletions = await audit_entries(services.db, "RETENTION_DELETE")
    assert [entry.resource for entry in deletions] == [f"backup:{b}" for b in databases[:7]]
    assert {(e.result, e.actor_id, tuple(e.details["rules"])) for e in deletions} == {
        ("SUCCESS", admin.record.id, ("keep-3",))
    }
    assert {e.details["to_status"] for e in deletions} == {"DELETED"}
    status = (await client.get(f"/backups/{databases[0]}/status", headers=headers(admin))).json()
    assert status["data"]["transitions"][-1]["reason"] == "RETENTION_DELETE"
    assert await audit_entries(services.db, "BACKUP_DELETE") == []
    runs = await audit_entries(services.db, "RETENTION_APPLY")
    assert [(run.details["deleted"], run.details["rules"]) for run in runs] == [
        (7, ["keep-3"]),
        (0, ["keep-3"]),
    ]
    assert again.json()["data"]["summary"]["deleted"] == 0
    alerts = (await client.get("/admin/alerts", headers=headers(admin))).json()["data"]
    assert [alert["rule_id"] for alert in alerts] == ["M9"]  # the rule's creation; no M8
    await assert_chain_valid(services.db)


async def test_held_and_quarantined_backups_survive_until_the_hold_is_released(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    databases, _ = await ten_days_of_databases_and_a_web_server(client, services, clock)
    held, quarantined = databases[0], databases[1]
    await place_hold(client, clock, admin, held)
    await quarantine(services, quarantined)
    await create_rule(client, admin, keep_last=3)

    done = (await apply_retention(client, admin, dry_run=False)).json()["data"]

    assert ids(done["deleted"]) == databases[2:7]
    kept = {entry["backup_id"]: entry for entry in done["kept"]}
    assert kept[held]["held"] is True
    assert kept[held]["kept_by"] == {"keep-3": ["legal hold"]}
    assert quarantined not in kept
    assert await status_of(services, held) is BackupStatus.ACTIVE
    assert await status_of(services, quarantined) is BackupStatus.QUARANTINED
    assert len(await objects_left(services, held)) == 2

    await release_hold(client, clock, admin, held)
    after = (await apply_retention(client, admin, dry_run=False)).json()["data"]

    assert ids(after["deleted"]) == [held]
    assert await status_of(services, held) is BackupStatus.DELETED
    assert await status_of(services, quarantined) is BackupStatus.QUARANTINED


async def test_each_backup_is_checked_again_under_its_lock_when_it_is_deleted(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    """What a run finds when a backup changed between its plan and its deletion: a hold
    placed meanwhile wins, a backup deleted meanwhile is left alone."""
    admin = await create_api_key(services, Role.ADMIN)
    databases, _ = await ten_days_of_databases_and_a_web_server(client, services, clock)
    held_since, deleted_since, expired = databases[:3]
    await place_hold(client, clock, admin, held_since)
    await client.delete(f"/backups/{deleted_since}", headers=headers(admin))

    outcome = await services.backups.delete_expired(
        actor(admin),
        [Expired(UUID(b), ("keep-3",)) for b in (held_since, deleted_since, expired)],
        mfa_verified=False,
    )

    assert outcome.deleted == [UUID(expired)]
    assert outcome.skipped[UUID(held_since)]["reason"] == "LEGAL_HOLD"
    assert outcome.skipped[UUID(deleted_since)] == {
        "reason": "STATUS_CHANGED",
        "status": "DELETED",
    }
    assert await status_of(services, held_since) is BackupStatus.ACTIVE
    assert await status_of(services, expired) is BackupStatus.DELETED
    assert len(await audit_entries(services.db, "RETENTION_DELETE")) == 1


async def test_a_run_deletes_only_the_confirmed_backups_of_its_plan(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    databases, _ = await ten_days_of_databases_and_a_web_server(client, services, clock)
    await create_rule(client, admin, keep_last=3)

    done = await apply_retention(client, admin, dry_run=False, backup_ids=databases[:2])

    data = done.json()["data"]
    assert ids(data["deleted"]) == databases[:2]
    assert ids(data["skipped"]) == databases[2:7]
    assert {entry["reason"] for entry in data["skipped"]} == {"NOT_CONFIRMED"}
    assert [await status_of(services, b) for b in databases[:3]] == [
        BackupStatus.DELETED,
        BackupStatus.DELETED,
        BackupStatus.ACTIVE,
    ]


async def test_a_backup_no_active_rule_matches_is_never_deleted(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    confidential = await backups_at(client, clock, operator, days(4), classification="CONFIDENTIAL")
    internal = await backups_at(client, clock, operator, days(2))
    clock.set(FIRST + timedelta(days=6, hours=9))  # the last two are younger than 5 days
    await create_rule(
        client, admin, name="everything", source_systems=["*"], keep_last=1, is_active=False
    )
    await create_rule(
        client,
        admin,
        name="confidential",
        classifications=["CONFIDENTIAL"],
        keep_last=1,
        min_age_days=5,
    )

    done = (await apply_retention(client, admin, dry_run=False)).json()["data"]

    assert done["rules"] == ["confidential"]
    assert ids(done["deleted"]) == confidential[:2]
    assert [entry["kept_by"] for entry in done["kept"]] == [
        {"confidential": ["min_age"]},
        {"confidential": ["min_age", "last"]},
    ]
    assert done["summary"]["not_matched"] == 2
    for backup_id in internal:
        assert await status_of(services, backup_id) is BackupStatus.ACTIVE


async def test_each_deletion_passes_the_policy_engine_like_a_deletion_by_hand(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    secret = await backups_at(
        client, clock, operator, days(2), source_system="db-vault", classification="SECRET"
    )
    internal = await backups_at(client, clock, operator, days(2))
    clock.set(FIRST + timedelta(days=20))
    for name, effect, classifications in (
        ("keep-secret", "deny", ["SECRET"]),
        ("mfa-for-deletes", "require_mfa", ["INTERNAL"]),
    ):
        policy = await client.post(
            "/admin/policies",
            headers=headers(bootstrap_key),
            json={
                "name": name,
                "effect": effect,
                "rule": {"operations": ["delete"], "classifications": classifications},
            },
        )
        assert policy.status_code == 201, policy.text
    await create_rule(client, admin, keep_last=1)
    clock.advance(minutes=1)

    without_mfa = (await apply_retention(client, admin, dry_run=False)).json()["data"]
    wrong_code = await apply_retention(
        client, admin, dry_run=False, extra_headers={"X-MFA-Token": "000000"}
    )
    clock.advance(seconds=30)
    code = headers(admin, totp_at=clock.now())["X-MFA-Token"]
    with_mfa = await apply_retention(
        client, admin, dry_run=False, extra_headers={"X-MFA-Token": code}
    )

    assert without_mfa["deleted"] == []
    skipped = {
        entry["backup_id"]: (entry["reason"], entry["details"]["rule"])
        for entry in without_mfa["skipped"]
    }
    assert skipped == {
        secret[0]: ("POLICY_DENIED", "keep-secret"),
        internal[0]: ("MFA_REQUIRED", "mfa-for-deletes"),
    }
    assert (wrong_code.status_code, wrong_code.json()["error"]["code"]) == (
        401,
        "AUTH_MFA_INVALID",
    )
    assert ids(with_mfa.json()["data"]["deleted"]) == [internal[0]]
    assert await status_of(services, secret[0]) is BackupStatus.ACTIVE
    assert await status_of(services, internal[0]) is BackupStatus.DELETED
    denials = [
        e for e in await audit_entries(services.db, "POLICY_CHECK_DENY") if e.details.get("via")
    ]
    assert {e.resource for e in denials} == {f"backup:{secret[0]}", f"backup:{internal[0]}"}
    record = await get_record(services, internal[0])
    assert record is not None
    assert record.cleanup_pending is False


async def test_a_rule_changed_in_the_database_stops_the_run_instead_of_deleting_by_it(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    databases, _ = await ten_days_of_databases_and_a_web_server(client, services, clock)
    rule = await create_rule(client, admin, keep_last=9)
    await execute(
        services,
        update(RetentionRule.__table__)
        .where(RetentionRule.id == UUID(rule["rule_id"]))
        .values(keep_last=1),
    )

    response = await apply_retention(client, admin, dry_run=False)

    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert {await status_of(services, b) for b in databases} == {BackupStatus.ACTIVE}
    tampering = await audit_entries(services.db, "TAMPERING_DETECTED")
    assert [entry.resource for entry in tampering] == [f"retention_rule:{rule['rule_id']}"]
