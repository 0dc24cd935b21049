"""The database is not trusted (SPEC §13.7): someone who can write it but cannot read the key
store gains nothing. Each attack below worked against wave 1 and is refused now, fails
closed, and is audited.

The attacker writes the tables directly (SQLAlchemy Core, no seals: they do not have the key).
"""

import hashlib
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import insert, update

from ssbg.domain.enums import Role
from ssbg.domain.incident import IncidentLevel
from ssbg.infrastructure.db.models import (
    ApiKey,
    BackupMetadata,
    KeyVersion,
    Policy,
    RestoreRequest,
    SystemState,
)
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries
from tests.support.audit_chain import execute
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import (
    JUSTIFICATION,
    backup_of,
    request_restore,
    set_incident_level,
)

# Which database is written behind the gateway matters to how rows are read back: both.
pytestmark = pytest.mark.both_backends

ATTACKER_KEY = "ssbg_" + "a7" * 16


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def tampering_entries(services: Services, resource: str) -> list[Any]:
    return [
        entry
        for entry in await audit_entries(services.db, "TAMPERING_DETECTED")
        if entry.resource == resource
    ]


# -- 1. minting an admin key --------------------------------------------------------------


async def test_an_api_key_row_written_into_the_database_does_not_authenticate(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    await execute(
        services,
        insert(ApiKey.__table__).values(
            id=uuid4(),
            key_hash=sha256(ATTACKER_KEY),  # what wave 1 stored: a bare SHA-256
            role="admin",
            description="minted in the database",
            department=None,
            allowed_ips=[],
            created_at=clock.now(),
        ),
    )

    response = await client.get("/me", headers={"X-API-Key": ATTACKER_KEY})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_INVALID_KEY"
    failure = (await audit_entries(services.db, "AUTH_FAILURE"))[-1]
    assert failure.details == {"reason": "UNKNOWN"}


async def test_an_api_key_promoted_in_the_database_stops_working_and_says_why(
    client: httpx.AsyncClient, services: Services
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    assert (await client.get("/me", headers=headers(operator))).status_code == 200
    await execute(
        services,
        update(ApiKey.__table__).where(ApiKey.id == operator.record.id).values(role="admin"),
    )

    response = await client.get("/me", headers=headers(operator))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_INVALID_KEY"
    failure = (await audit_entries(services.db, "AUTH_FAILURE"))[-1]
    assert (failure.details, failure.resource) == (
        {"reason": "TAMPERED"},
        f"api_key:{operator.record.id}",
    )


# -- 2. downloading any backup's plaintext ---------------------------------------------------


async def test_a_completed_restore_written_into_the_database_releases_nothing(
    client: httpx.AsyncClient, services: Services, clock: FixedClock
) -> None:
    owner = await create_api_key(services, Role.OPERATOR)
    insider = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, owner, b"the payroll", classification="SECRET")
    forged_id, token = uuid4(), "chosen-by-the-attacker"
    await execute(
        services,
        insert(RestoreRequest.__table__).values(
            id=forged_id,
            backup_id=UUID(backup_id),
            requested_by=insider.record.id,
            justification=JUSTIFICATION,
            status="COMPLETED",
            mfa_verified=True,
            token_hash=sha256(token),
            token_issued_at=clock.now(),
            token_expires_at=clock.now() + timedelta(days=3650),
            downloads=0,
            created_at=clock.now(),
            updated_at=clock.now(),
        ),
    )

    response = await client.get(
        f"/restores/{forged_id}/download",
        headers={**headers(insider), "X-Restore-Token": token},
    )

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert b"payroll" not in response.content
    assert await tampering_entries(services, f"restore:{forged_id}")
    assert await audit_entries(services.db, "KEY_UNWRAP") == []
    await assert_chain_valid(services.db)


# -- 3. skipping MFA by lowering a classification --------------------------------------------


async def test_a_classification_lowered_in_the_database_is_refused_not_restored(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, owner, b"launch codes", classification="SECRET")
    await execute(
        services,
        update(BackupMetadata.__table__)
        .where(BackupMetadata.id == UUID(backup_id))
        .values(classification="PUBLIC"),
    )

    response = await request_restore(client, admin, backup_id)  # no MFA code

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert "download" not in response.text
    assert await tampering_entries(services, f"backup:{backup_id}")
    assert await audit_entries(services.db, "KEY_UNWRAP") == []


# -- every other sealed row ------------------------------------------------------------------


async def test_an_incident_level_lowered_in_the_database_stops_restores_instead(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey
) -> None:
    owner = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    backup_id = await backup_of(client, owner, b"payload")
    await set_incident_level(services, bootstrap_key, IncidentLevel.QUARANTINE)
    await execute(services, update(SystemState.__table__).values(incident_level=0))

    response = await request_restore(client, admin, backup_id)

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert await tampering_entries(services, "system")


async def test_a_deny_policy_switched_off_in_the_database_blocks_instead_of_allowing(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    created = await client.post(
        "/admin/policies",
        headers=headers(admin),
        json={"name": "no-legacy", "effect": "deny", "rule": {"source_systems": ["legacy-*"]}},
    )
    policy_id = created.json()["data"]["policy_id"]
    await execute(
        services,
        update(Policy.__table__).where(Policy.id == UUID(policy_id)).values(is_active=False),
    )
    operator = await create_api_key(services, Role.OPERATOR)

    response = await client.post(
        "/backups",
        params={"classification": "INTERNAL", "source_system": "legacy-erp", "filename": "x"},
        headers={**headers(operator), "Content-Type": "application/octet-stream"},
        content=b"should not be stored",
    )

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert await tampering_entries(services, f"policy:{policy_id}")


async def test_a_public_key_replaced_in_the_database_is_never_used_to_wrap_a_backup(
    client: httpx.AsyncClient, services: Services
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    attacker = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = attacker.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    await execute(
        services,
        update(KeyVersion.__table__)
        .where(KeyVersion.version == "P-001")
        .values(public_key_pem=pem),
    )
    operator = await create_api_key(services, Role.OPERATOR)

    response = await client.post(
        "/backups",
        params={"classification": "INTERNAL", "source_system": "erp", "filename": "x"},
        headers={**headers(operator), "Content-Type": "application/octet-stream"},
        content=b"must not be readable by the attacker",
    )

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTEGRITY_FAILURE"
    assert await tampering_entries(services, "key_version:P-001")
    assert await audit_entries(services.db, "KEY_WRAP") == []


@pytest.mark.parametrize("column", ["role", "allowed_ips", "expires_at", "revoked_at"])
async def test_every_sealed_field_of_an_api_key_is_covered(
    client: httpx.AsyncClient, services: Services, clock: FixedClock, column: str
) -> None:
    key = await create_api_key(services, Role.AUDITOR)
    value = {
        "role": "super_admin",
        "allowed_ips": ["0.0.0.0/0"],
        "expires_at": clock.now() + timedelta(days=1),
        "revoked_at": clock.now(),
    }[column]
    await execute(
        services, update(ApiKey.__table__).where(ApiKey.id == key.record.id).values({column: value})
    )

    response = await client.get("/me", headers=headers(key))

    assert response.status_code == 401
    assert (await audit_entries(services.db, "AUTH_FAILURE"))[-1].details["reason"] in {
        "TAMPERED",
        "REVOKED",  # a revocation written behind the gateway still revokes: it grants nothing
    }
