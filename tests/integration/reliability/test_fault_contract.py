"""The fault matrix's contract can fail: it finds a leaked window of plaintext anywhere under
the watched roots, and an ACTIVE record whose wrapped key is missing from the store."""

from pathlib import Path
from uuid import UUID

import httpx

from ssbg.domain.enums import Role
from ssbg.infrastructure.storage.layout import wrapped_dek_key
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.factories import create_api_key
from tests.support.fault_contract import (
    active_without_objects,
    assert_fault_contract,
    marked_payload,
    plaintext_on_disk,
)
from tests.support.restores import backup_of


def test_a_window_of_plaintext_anywhere_under_a_root_is_found(tmp_path: Path) -> None:
    payload = marked_payload(300_000)
    nested = tmp_path / "objects" / "deep"
    nested.mkdir(parents=True)
    (nested / "clean.bin").write_bytes(marked_payload(300_000))
    assert plaintext_on_disk([tmp_path], [payload]) == []

    leak = nested / "spool.tmp"
    # Only a middle window, straddling the reader's 1 MiB chunk boundary.
    middle = len(payload) // 2
    leak.write_bytes(b"\0" * (1024 * 1024 - 10) + payload[middle - 20 : middle + 60])
    assert plaintext_on_disk([tmp_path], [payload]) == [leak]


async def test_an_active_backup_missing_an_object_breaks_the_contract(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, tmp_path: Path
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    admin = await create_api_key(services, Role.ADMIN)
    payload = marked_payload(4096)
    backup_id = await backup_of(client, operator, payload)
    roots = [services.settings.data_dir]
    await assert_fault_contract(
        services, payloads=[payload], roots=roots, http=client, operator=operator, admin=admin
    )

    await services.object_store.delete(wrapped_dek_key(UUID(backup_id)))

    assert [line.split(":")[0] for line in await active_without_objects(services)] == [backup_id]
