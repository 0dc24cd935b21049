"""``ssbg serve --workers 2``: every scrape, whichever worker answers it, shows the totals of
all workers (prometheus-client's multiprocess mode over a private directory ``ssbg serve``
creates and removes).

The workers' metric files are inspected directly to prove the point: requests were counted by
both workers, and scrapes were answered by both, so a scrape that showed one worker's share
would have been caught.
"""

import asyncio
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit import head_sequence
from tests.support.backups import random_payload
from tests.support.metrics import parse, value
from tests.support.processes import ServeProcess, gateway_env

UNKNOWN_KEY = {"X-API-Key": "ssbg_" + "0" * 32}
# A new connection for every request, so the kernel hands them to either worker.
FRESH = {"Connection": "close"}
DURATION_COUNT = "ssbg_http_request_duration_seconds_count"


def _metrics_dir(tmp: Path) -> Path:
    (directory,) = tmp.glob("ssbg-metrics-*")
    return directory


def _per_process(directory: Path, kind: str, name: str, **labels: str) -> dict[str, float]:
    """``name{labels}`` as each process counted it, from its own file (``counter_<pid>.db``)."""
    found: dict[str, float] = {}
    for path in directory.glob(f"{kind}_*.db"):
        pid = path.stem.split("_")[-1]
        for metric in MultiProcessCollector.merge([str(path)]):
            for sample in metric.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    found[pid] = found.get(pid, 0.0) + sample.value
    return found


def _workers_with_counts(counts: dict[str, float]) -> int:
    return sum(1 for count in counts.values() if count > 0)


@pytest.fixture
def serve_tmp(tmp_path: Path) -> Path:
    directory = tmp_path / "tmp"
    directory.mkdir()
    return directory


def _serve(settings: Settings, serve_tmp: Path, workers: int) -> ServeProcess:
    env = {**gateway_env(settings, TEST_KEY_PASSWORD), "TMPDIR": str(serve_tmp)}
    return ServeProcess(env, serve_tmp.parent, workers=workers)


@pytest.fixture
def two_workers(
    settings: Settings, services: Services, bootstrap_key: IssuedApiKey, serve_tmp: Path
) -> Iterator[ServeProcess]:
    server = _serve(settings, serve_tmp, 2).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.both_backends
async def test_every_scrape_under_two_workers_shows_the_totals_of_both(
    two_workers: ServeProcess,
    services: Services,
    bootstrap_key: IssuedApiKey,
    serve_tmp: Path,
) -> None:
    directory = _metrics_dir(serve_tmp)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700

    async with httpx.AsyncClient(base_url=two_workers.root_url, timeout=30) as http:
        payloads = [random_payload(1000 + n) for n in range(3)]
        for payload in payloads:
            created = await http.post(
                "/api/v1/backups",
                headers={"X-API-Key": bootstrap_key.api_key, **FRESH},
                params={"classification": "INTERNAL", "source_system": "db-1"},
                content=payload,
            )
            assert created.status_code == 201, created.text

        # Failed authentications, in concurrent batches, until both workers have counted some.
        refused = 0
        for _ in range(40):
            batch = await asyncio.gather(
                *(http.get("/api/v1/me", headers={**UNKNOWN_KEY, **FRESH}) for _ in range(8))
            )
            assert {response.status_code for response in batch} <= {401, 429}
            refused += len(batch)
            counts = _per_process(directory, "counter", "ssbg_auth_failures_total")
            if _workers_with_counts(counts) >= 2:
                break
        assert _workers_with_counts(counts) >= 2, counts
        head = await head_sequence(services.db)

        # Scrape until both workers have answered scrapes; every one shows the full totals.
        for scrapes in range(1, 61):
            response = await http.get("/metrics", headers=FRESH)
            assert response.status_code == 200, response.text
            samples = parse(response.text)
            assert value(samples, "ssbg_auth_failures_total") == refused
            assert value(samples, "ssbg_backups_total", result="success") == len(payloads)
            assert value(samples, "ssbg_backup_bytes_total") == sum(map(len, payloads))
            refusals_timed = value(
                samples, DURATION_COUNT, route="/api/v1/me", method="GET", status="401"
            ) + value(samples, DURATION_COUNT, route="/api/v1/me", method="GET", status="429")
            assert refusals_timed == refused
            assert value(samples, "ssbg_database_up") == 1
            assert value(samples, "ssbg_audit_head_sequence") == head
            scraped_by = _per_process(directory, "histogram", DURATION_COUNT, route="/metrics")
            if scrapes >= 4 and _workers_with_counts(scraped_by) >= 2:
                break
        assert _workers_with_counts(scraped_by) >= 2, scraped_by

    assert two_workers.stop() == 0
    assert not directory.exists()


async def test_a_single_worker_serve_removes_its_metrics_directory_when_terminated(
    settings: Settings, services: Services, bootstrap_key: IssuedApiKey, serve_tmp: Path
) -> None:
    # One worker: uvicorn runs in the ``ssbg serve`` process itself and ends it by raising
    # SIGTERM again after its graceful shutdown.
    server = _serve(settings, serve_tmp, 1).start()
    try:
        directory = _metrics_dir(serve_tmp)
        async with httpx.AsyncClient(base_url=server.root_url, timeout=30) as http:
            assert (await http.get("/api/v1/me", headers=UNKNOWN_KEY)).status_code == 401
            samples = parse((await http.get("/metrics")).text)
        assert value(samples, "ssbg_auth_failures_total") == 1
    finally:
        status = server.stop()

    assert status == -signal.SIGTERM
    assert not directory.exists()
