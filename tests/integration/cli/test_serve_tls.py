"""``ssbg serve --tls-cert --tls-key``: HTTPS without a proxy, for small single-host sites.

A real ``ssbg serve`` child process with a certificate made in the test (self-signed, SAN
127.0.0.1): it answers HTTPS to a client that trusts exactly that certificate, nothing in plain
HTTP, and the source address logic (``SSBG_TRUSTED_PROXIES``) works as behind a proxy. Wrong
TLS options stop it before anything starts.
"""

from pathlib import Path

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.conftest import TEST_KEY_PASSWORD
from tests.support.audit_chain import run_cli
from tests.support.cli import env_for
from tests.support.factories import create_api_key, headers
from tests.support.processes import ServeProcess, gateway_env
from tests.support.tls import self_signed_loopback


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "tls"
    folder.mkdir()
    return self_signed_loopback(folder)


async def test_serve_answers_https_only_and_still_knows_the_client_address(
    settings: Settings,
    services: Services,
    bootstrap_key: IssuedApiKey,
    certificate: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    # A proxy on the loopback address may name the client, as a load balancer would.
    env = {**gateway_env(settings, TEST_KEY_PASSWORD), "SSBG_TRUSTED_PROXIES": "127.0.0.1/32"}
    server = ServeProcess(env, tmp_path, workers=1, tls=certificate).start()
    try:
        async with httpx.AsyncClient(
            base_url=f"{server.root_url}/api/v1", verify=server.verify, timeout=30
        ) as https:
            ready = await https.get("/health/ready")
            forwarded = await https.get(
                "/me", headers={**headers(operator), "X-Forwarded-For": "203.0.113.9"}
            )
            record = await https.get(
                f"/admin/api-keys/{operator.record.id}", headers=headers(bootstrap_key)
            )
        # The client commands trust a private certificate through SSL_CERT_FILE.
        client_env = env_for(server.root_url, bootstrap_key, SSL_CERT_FILE=str(certificate[0]))
        listed = await run_cli(["api-keys", "list", "--json"], client_env)
        async with httpx.AsyncClient(timeout=30) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"http://127.0.0.1:{server.port}/api/v1/health")
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"{server.root_url}/api/v1/health")  # the system's trust store
    finally:
        server.stop()

    assert server.root_url.startswith("https://")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert forwarded.status_code == 200, forwarded.text
    assert forwarded.json()["data"]["role"] == "operator"
    assert record.status_code == 200, record.text
    assert record.json()["data"]["last_used_ip"] == "203.0.113.9"
    assert listed.exit_code == 0, listed.stdout
    assert str(operator.record.id) in {key["key_id"] for key in listed.json()}


async def test_wrong_tls_options_stop_serve_before_anything_starts(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    other = tmp_path / "other"
    other.mkdir()
    other_cert, other_key = self_signed_loopback(other)
    locked = tmp_path / "locked"
    locked.mkdir()
    _, encrypted = self_signed_loopback(locked, key_password=b"passphrase")
    data = tmp_path / "data"
    env = {"SSBG_DATA_DIR": str(data), "SSBG_KEY_PASSWORD": TEST_KEY_PASSWORD}

    async def serve(*options: str) -> tuple[int, str]:
        # In a worker thread: should the options pass, serve could not even install its
        # signal handler there, so a regression fails here instead of serving.
        ran = await run_cli(["serve", "--port", "1", *options], env)
        return ran.exit_code, ran.stdout + ran.stderr

    only_cert = await serve("--tls-cert", str(cert))
    only_key = await serve("--tls-key", str(key))
    missing = await serve("--tls-cert", str(tmp_path / "nowhere.crt"), "--tls-key", str(key))
    mismatched = await serve("--tls-cert", str(cert), "--tls-key", str(other_key))
    swapped = await serve("--tls-cert", str(other_key), "--tls-key", str(other_cert))
    passphrase = await serve("--tls-cert", str(cert), "--tls-key", str(encrypted))

    for code, output in (only_cert, only_key):
        assert code == 2, output
        assert "give both or neither" in output
    assert missing[0] == 2
    assert "--tls-cert: cannot read" in missing[1]
    assert "No such file or directory" in missing[1]
    for code, output in (mismatched, swapped):
        assert code == 2, output
        assert "are not a PEM certificate and its private key" in output
    assert passphrase[0] == 2
    assert "is encrypted" in passphrase[1]
    assert not data.exists()  # nothing was migrated, initialised or served
