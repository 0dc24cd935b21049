"""The retention and legal-hold client commands against a real gateway over HTTP (uvicorn on
a loopback port): ``ssbg retention plan|apply``, ``ssbg backups hold|unhold``."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ssbg.domain.enums import BackupStatus, Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import audit_entries
from tests.support.audit_chain import run_cli
from tests.support.cli import env_for, fresh_code
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.retention import backups_at, create_rule, status_of

FIRST = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
async def api(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/v1") as http:
        yield http


async def five_days_kept_two(
    api: httpx.AsyncClient, services: Services, clock: FixedClock, admin: IssuedApiKey
) -> list[str]:
    operator = await create_api_key(services, Role.OPERATOR)
    made = await backups_at(api, clock, operator, [FIRST + timedelta(days=n) for n in range(5)])
    clock.set(FIRST + timedelta(days=10))
    await create_rule(api, admin, name="keep-2", keep_last=2)
    return made


async def test_plan_lists_what_would_go_and_why_the_rest_stays_and_changes_nothing(
    gateway_url: str, api: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    made = await five_days_kept_two(api, services, clock, admin)
    env = env_for(gateway_url, admin)

    table = await run_cli(["retention", "plan"], env)
    as_json = await run_cli(["retention", "plan", "--json"], env)

    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    for day, backup_id in enumerate(made, start=1):
        (row,) = [line.split() for line in lines if backup_id in line]
        assert row[:5] == [backup_id, f"2026-11-0{day}", "03:00", "db-prod-1", "INTERNAL"]
        assert row[5:] == (["keep-2"] if day <= 3 else ["keep-2:", "last"])
    assert "Rules: keep-2. 3 to delete, 2 kept, 0 skipped, 0 matched by no rule" in (table.stdout)
    plan = as_json.json()
    assert [entry["backup_id"] for entry in plan["deleted"]] == made[:3]
    assert plan["dry_run"] is True
    for backup_id in made:
        assert await status_of(services, backup_id) is BackupStatus.ACTIVE


async def test_apply_asks_first_and_deletes_only_after_a_yes(
    gateway_url: str, api: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    made = await five_days_kept_two(api, services, clock, admin)
    env = env_for(gateway_url, admin)

    declined = await run_cli(["retention", "apply"], env, stdin="n\n")
    statuses_after_no = [await status_of(services, b) for b in made]
    accepted = await run_cli(["retention", "apply"], env, stdin="y\n")

    assert declined.exit_code == 1
    assert "Delete these 3 backup(s)?" in declined.stderr
    assert "Nothing was deleted." in declined.stderr
    assert statuses_after_no == [BackupStatus.ACTIVE] * 5
    assert accepted.exit_code == 0, accepted.stderr
    assert "Rules: keep-2. 3 deleted, 2 kept" in accepted.stdout
    assert [await status_of(services, b) for b in made] == [BackupStatus.DELETED] * 3 + [
        BackupStatus.ACTIVE
    ] * 2
    deletions = await audit_entries(services.db, "RETENTION_DELETE")
    assert [entry.resource for entry in deletions] == [f"backup:{b}" for b in made[:3]]


async def test_a_hold_placed_from_the_cli_keeps_a_backup_from_apply_yes(
    gateway_url: str, api: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    made = await five_days_kept_two(api, services, clock, admin)
    env = env_for(gateway_url, admin)
    held = made[0]

    no_code = await run_cli(["backups", "hold", held, "--reason", "LIT-9", "--json"], env)
    # The TOTP code typed at the prompt the client shows when the gateway asks for one.
    placed = await run_cli(
        ["backups", "hold", held, "--reason", "LIT-9"], env, stdin=fresh_code(admin, clock) + "\n"
    )
    applied = await run_cli(["retention", "apply", "--yes", "--json"], env)
    released = await run_cli(
        ["backups", "unhold", held, "--reason", "LIT-9 closed", "--json"],
        env_for(gateway_url, admin, SSBG_MFA_TOKEN=fresh_code(admin, clock)),
    )

    assert (no_code.exit_code, no_code.json()["error"]["code"]) == (1, "AUTH_MFA_REQUIRED")
    assert placed.exit_code == 0, placed.stderr
    assert f"Backup {held} is under a legal hold" in placed.stdout
    assert "(LIT-9)" in placed.stdout
    report = applied.json()
    assert applied.exit_code == 0
    assert [entry["backup_id"] for entry in report["deleted"]] == made[1:3]
    assert {entry["backup_id"]: entry["kept_by"] for entry in report["kept"]}[held] == {
        "keep-2": ["legal hold"]
    }
    assert await status_of(services, held) is BackupStatus.ACTIVE
    assert released.exit_code == 0, released.stderr
    assert released.json()["legal_hold"]["held"] is False
    record = (await api.get(f"/backups/{held}", headers=headers(admin))).json()["data"]
    assert record["legal_hold"]["held"] is False
    assert [e.details["reason"] for e in await audit_entries(services.db, "BACKUP_HOLD")] == [
        "LIT-9"
    ]
