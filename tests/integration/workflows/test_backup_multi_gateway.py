"""Two gateway processes, one PostgreSQL database, one S3 bucket: replicas share nothing but
those, and 40 concurrent uploads between them all end ACTIVE with one unbroken audit chain."""

import asyncio
import hashlib
import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ssbg.domain.enums import Role
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import assert_chain_valid
from tests.support.backups import stored_objects
from tests.support.factories import create_api_key
from tests.support.processes import GatewayProcess, gateway_env

UPLOADS = 40


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("storage_backend", ["s3"])
async def test_two_gateways_share_one_database_and_bucket_under_concurrent_uploads(
    services: Services, settings: Settings, bootstrap_key: IssuedApiKey, tmp_path: Path
) -> None:
    operators = [await create_api_key(services, Role.OPERATOR) for _ in range(4)]
    payloads = [os.urandom(128 * 1024 + 4099 * index) for index in range(UPLOADS)]
    gateways = [
        GatewayProcess(gateway_env(settings, TEST_KEY_PASSWORD), tmp_path, name=f"gateway-{n}")
        for n in "ab"
    ]
    try:
        for gateway in gateways:
            gateway.start()
        limits = httpx.Limits(max_connections=UPLOADS, max_keepalive_connections=UPLOADS)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"{gateways[index % 2].base_url}/backups",
                        params={"classification": "INTERNAL", "source_system": f"host-{index}"},
                        headers={
                            "X-API-Key": operators[index % 4].api_key,
                            "Content-Type": "application/octet-stream",
                        },
                        content=payload,
                    )
                    for index, payload in enumerate(payloads)
                )
            )
    finally:
        for gateway in gateways:
            gateway.close()

    assert [r.status_code for r in responses] == [201] * UPLOADS, [
        r.text for r in responses if r.status_code != 201
    ]
    async with services.db.transaction(write=False) as tx:
        records = (await tx.session.execute(select(BackupMetadata))).scalars().all()
    assert len(records) == UPLOADS
    assert {r.status for r in records} == {"ACTIVE"}
    by_source = {r.source_system: r for r in records}
    for index, payload in enumerate(payloads):
        record = by_source[f"host-{index}"]
        assert record.checksum_plaintext == hashlib.sha512(payload).hexdigest()
        assert record.storage_backend == "s3"
        assert await stored_objects(services.object_store, record.id) == {
            "data.enc": True,
            "dek.wrapped": True,
        }
    entries = await assert_chain_valid(services.db)
    assert sum(e.action == "BACKUP_COMPLETE" for e in entries) == UPLOADS
    assert (
        sum(e.action == "SYSTEM_START" and e.details.get("event") == "STARTED" for e in entries)
        == 2
    )
