"""A long chain (10,000 entries, checkpoints every 1,000) validates as valid."""

from collections.abc import AsyncIterator

import httpx
import pytest

from ssbg.api.app import create_app
from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.services.container import Services
from tests.support.audit_chain import seed_chain
from tests.support.factories import create_api_key, headers

# Validation reads canonical text computed in SQL, differently per dialect.
pytestmark = pytest.mark.both_backends


@pytest.fixture
async def seeded_client(
    services: Services, shared_key_store: FileKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    """10,000 genuine entries and 10 signed checkpoints, then the gateway initialised on top."""
    signing_key = shared_key_store.load_private_key(AUDIT_SIGNING_NAME)
    await seed_chain(services.db.engine, 10_000, 1_000, signing_key)
    await services.bootstrap.initialize()
    transport = httpx.ASGITransport(app=create_app(services=services), client=("192.0.2.10", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://ssbg.test/api/v1") as http:
        yield http


async def test_chain_of_ten_thousand_entries_validates(
    seeded_client: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)

    response = await seeded_client.post("/audit/validate", headers=headers(auditor))

    # The bootstrap and the auditor key appended 4 entries through the gateway after them;
    # the bootstrap's transaction advanced the anchor to its last.
    assert response.json()["data"] | {"head": None, "anchor": None} == {
        "valid": True,
        "entries_checked": 10_004,
        "first_invalid_sequence": None,
        "reason": None,
        "head": None,
        "checkpoints_verified": 10,
        "anchor": None,
    }
    assert response.json()["data"]["anchor"]["sequence"] == 10_003
