import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ssbg.api.app import create_app
from ssbg.domain.key_versions import FIRST_KEY_VERSION
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.support.clock import FixedClock
from tests.support.databases import PostgresTemplate, SqliteTemplate, postgres_base_url
from tests.support.processes import MotoServer
from tests.support.served import served

TEST_KEY_PASSWORD = "test-key-password-not-for-production"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate]:
    base_url = postgres_base_url()
    if base_url is None:
        pytest.skip("SSBG_TEST_POSTGRES_URL is not set")
    template = PostgresTemplate(base_url)
    yield template
    template.close()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres" and postgres_base_url() is None:
        pytest.skip("SSBG_TEST_POSTGRES_URL is not set")
    return name


@pytest.fixture
async def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    if backend == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        yield template.fresh(tmp_path)
        return
    pg: PostgresTemplate = request.getfixturevalue("postgres_template")
    url, name = await pg.fresh()
    try:
        yield url
    finally:
        await pg.drop(name)


@pytest.fixture(scope="session")
def shared_key_store(tmp_path_factory: pytest.TempPathFactory) -> FileKeyStore:
    """Keys are slow to derive (600,000 PBKDF2 rounds), so tests share one store.

    Tests that destroy or rotate keys build their own with ``make_key_store``.
    """
    store = FileKeyStore(tmp_path_factory.mktemp("keys"), TEST_KEY_PASSWORD)
    store.ensure_key_pair(FIRST_KEY_VERSION)
    store.ensure_audit_signing_key()
    store.mfa_secret_box()
    return store


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One S3 protocol server (moto, server mode) for the session; tests use own buckets."""
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def storage_backend() -> str:
    """``local`` unless a test parametrizes it (``@pytest.mark.parametrize("storage_backend",
    ["local", "s3"])``)."""
    return "local"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Extra ``Settings`` fields for one test: ``@pytest.mark.parametrize("settings_overrides",
    [{"max_upload_bytes": 1024}])``."""
    return {}


def s3_settings(endpoint_url: str) -> dict[str, object]:
    return {
        "storage_backend": "s3",
        "s3_endpoint_url": endpoint_url,
        "s3_bucket": f"ssbg-test-{uuid.uuid4().hex[:16]}",
        "s3_region": "us-east-1",
        "s3_access_key_id": SecretStr("testing"),
        "s3_secret_access_key": SecretStr("testing"),
    }


@pytest.fixture
def settings(
    database_url: str,
    tmp_path: Path,
    shared_key_store: FileKeyStore,
    storage_backend: str,
    settings_overrides: dict[str, object],
    request: pytest.FixtureRequest,
) -> Settings:
    storage: dict[str, object] = {}
    if storage_backend == "s3":
        moto: MotoServer = request.getfixturevalue("moto_server")
        storage = s3_settings(moto.url)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="development",
        data_dir=tmp_path / "data",
        database_url=database_url,
        storage_path=tmp_path / "objects",
        keystore_dir=shared_key_store.directory,
        key_password=SecretStr(TEST_KEY_PASSWORD),
        # The key store is shared between tests (its keys are slow to derive); each test's
        # chain has an anchor of its own.
        audit_anchor_file=tmp_path / "anchor" / "audit-anchor.json",
        **{**storage, **settings_overrides},  # type: ignore[arg-type]
    )


@pytest.fixture
async def services(
    settings: Settings, shared_key_store: FileKeyStore, clock: FixedClock
) -> AsyncIterator[Services]:
    built = build_services(settings, clock=clock, key_store=shared_key_store)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def bootstrap_key(services: Services) -> IssuedApiKey:
    """Initialise the gateway (P-001, signing key, bootstrap super_admin) and return that key."""
    result = await services.bootstrap.initialize()
    assert result.issued is not None
    return result.issued


@pytest.fixture
async def client(
    services: Services, bootstrap_key: IssuedApiKey
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=services)
    transport = httpx.ASGITransport(
        app=app, client=("192.0.2.10", 50000), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://ssbg.test/api/v1") as http:
        yield http


@pytest.fixture
async def gateway_url(services: Services, bootstrap_key: IssuedApiKey) -> AsyncIterator[str]:
    """The gateway over real HTTP (uvicorn on a loopback port), for the client commands."""
    async with served(services) as url:
        yield url
