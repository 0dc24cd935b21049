"""Restores through a real uvicorn gateway: large payloads in bounded memory, and a download
whose ciphertext changed after verification is aborted, never delivered short."""

import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.backups import get_record
from tests.support.factories import create_api_key, headers
from tests.support.processes import GatewayProcess, gateway_env
from tests.support.restores import JUSTIFICATION

MIB = 1024 * 1024


class PeakRss:
    """Samples a process's resident memory on a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB


@pytest.fixture
def gateway(
    settings: Settings, tmp_path: Path, bootstrap_key: IssuedApiKey
) -> Iterator[GatewayProcess]:
    process = GatewayProcess(gateway_env(settings, TEST_KEY_PASSWORD), tmp_path).start()
    try:
        yield process
    finally:
        process.close()


async def _random_chunks(size: int, digest: "hashlib._Hash") -> AsyncIterator[bytes]:
    remaining = size
    while remaining:
        chunk = os.urandom(min(MIB, remaining))
        digest.update(chunk)
        remaining -= len(chunk)
        yield chunk


async def _upload(http: httpx.AsyncClient, key: IssuedApiKey, size: int) -> tuple[str, str]:
    digest = hashlib.sha512()
    response = await http.post(
        "/backups",
        params={"classification": "INTERNAL", "source_system": "db-big", "filename": "big.bin"},
        headers={**headers(key), "Content-Type": "application/octet-stream"},
        content=_random_chunks(size, digest),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["backup_id"]), digest.hexdigest()


async def _restore(http: httpx.AsyncClient, key: IssuedApiKey, backup_id: str) -> dict[str, str]:
    response = await http.post(
        "/restores",
        headers=headers(key),
        json={"backup_id": backup_id, "justification": JUSTIFICATION},
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return {"restore_id": data["restore_id"], "token": data["download"]["token"]}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_200_mib_round_trip_in_bounded_server_memory(
    gateway: GatewayProcess, services: Services, settings: Settings
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    size = 200 * MIB
    timeout = httpx.Timeout(30.0, read=600.0)
    assert gateway.process is not None
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=timeout) as http:
        backup_id, expected = await _upload(http, admin, size)
        with PeakRss(gateway.process.pid) as rss:
            restore = await _restore(http, admin, backup_id)
            received = hashlib.sha512()
            count = 0
            async with http.stream(
                "GET",
                f"/restores/{restore['restore_id']}/download",
                headers={**headers(admin), "X-Restore-Token": restore["token"]},
            ) as response:
                assert response.status_code == 200
                assert response.headers["X-Content-SHA512"] == expected
                async for chunk in response.aiter_bytes():
                    received.update(chunk)
                    count += len(chunk)

    assert count == size
    assert received.hexdigest() == expected
    assert rss.growth_mib < 100, f"server RSS grew {rss.growth_mib:.1f} MiB"


async def _read_all(
    http: httpx.AsyncClient, key: IssuedApiKey, restore: dict[str, str], received: list[int]
) -> None:
    async with http.stream(
        "GET",
        f"/restores/{restore['restore_id']}/download",
        headers={**headers(key), "X-Restore-Token": restore["token"]},
    ) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            received.append(len(chunk))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_download_whose_ciphertext_changed_is_aborted_and_the_backup_quarantined(
    gateway: GatewayProcess, services: Services, settings: Settings
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    size = 8 * MIB
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60.0) as http:
        backup_id, _expected = await _upload(http, admin, size)
        restore = await _restore(http, admin, backup_id)
        record = await get_record(services, backup_id)
        assert record is not None
        data_file = settings.resolved_storage_path / record.storage_ref
        stored = bytearray(data_file.read_bytes())
        stored[len(stored) - 2 * MIB] ^= 0x80  # a late segment: the first ones go out fine
        data_file.write_bytes(bytes(stored))

        received: list[int] = []
        with pytest.raises(httpx.RemoteProtocolError):
            await _read_all(http, admin, restore, received)

        status = await http.get(f"/backups/{backup_id}/status", headers=headers(admin))

    assert 0 < sum(received) < size
    assert status.json()["data"]["status"] == "QUARANTINED"
