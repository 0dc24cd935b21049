"""A crypto-shred that began is final on every replica: from ``CRYPTO_SHRED_START`` on, the
version unwraps nothing — not even on a replica that still holds its private key in memory —
although its gateway died before the version was marked ``DESTROYED`` (the kill -9 cell of
the fault matrix, tests/integration/reliability/test_kill9.py, catches it in that window)."""

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import audit_entries
from tests.support.backups import get_record
from tests.support.clock import FixedClock
from tests.support.factories import actor, create_api_key
from tests.support.keys import rewrap, rotate, with_mfa
from tests.support.restores import backup_of, download, request_restore

pytestmark = pytest.mark.own_key_store


class KeyStoreThatDiesWhileShredding(FileKeyStore):
    """The shredding gateway dies before its first write to the key file."""

    def destroy_private_key(self, name: str) -> bool:
        raise OSError("killed")


def code_of(response: httpx.Response) -> tuple[int, str]:
    assert "error" in response.json(), response.text
    return response.status_code, str(response.json()["error"]["code"])


async def test_a_replica_holding_the_key_refuses_it_once_its_shred_began(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    key_store: FileKeyStore,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    doomed = await backup_of(client, operator, b"to be destroyed with P-001")
    earlier = await request_restore(client, admin, doomed)
    assert earlier.status_code == 201, earlier.text  # P-001 is in this replica's memory now
    await rotate(client, clock, bootstrap_key)
    shredding = build_services(
        settings,
        clock=clock,
        key_store=KeyStoreThatDiesWhileShredding(key_store.directory, TEST_KEY_PASSWORD),
    )
    try:
        with pytest.raises(OSError, match="killed"):
            await shredding.keys.crypto_shred(
                actor(bootstrap_key), "P-001", "DESTROY P-001", "end of retention"
            )
    finally:
        await shredding.close()

    restored = await request_restore(client, admin, doomed)
    downloaded = await download(client, admin, earlier.json()["data"])
    token = await client.post(
        f"/restores/{earlier.json()['data']['restore_id']}/token",
        headers=with_mfa(clock, admin),
    )
    rewrapped = await rewrap(client, clock, bootstrap_key, "P-001")

    assert key_store.has_private_key("P-001")  # refused by the shred's mark, not a lost file
    assert code_of(restored) == (410, "CRYPTO_SHREDDED")
    assert "download" not in restored.text
    assert code_of(downloaded) == (410, "CRYPTO_SHREDDED")
    assert code_of(token) == (410, "CRYPTO_SHREDDED")
    assert code_of(rewrapped) == (410, "CRYPTO_SHREDDED")
    record = await get_record(services, doomed)
    assert record is not None
    assert record.key_version == "P-001"  # not rescued to P-002 by the rewrap
    assert await audit_entries(services.db, "KEY_REWRAP") == []
    # A retry completes the shred the dead gateway began.
    retried = await client.post(
        "/admin/keys/P-001/crypto-shred",
        headers=with_mfa(clock, bootstrap_key),
        json={"confirmation": "DESTROY P-001", "reason": "end of retention"},
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["data"]["backups_shredded"] == 1
    assert not key_store.has_private_key("P-001")
