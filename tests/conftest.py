import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from ssbg.api.app import create_app
from ssbg.domain.key_versions import FIRST_KEY_VERSION
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.log_config import configure_logging
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.support.clock import FixedClock
from tests.support.databases import PostgresTemplate, SqliteTemplate, postgres_base_url
from tests.support.keys import copy_key_store
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


# -- which database a test runs on ------------------------------------------------------------
#
# A test that asks for a database (``database_url``, ``settings``, ``services``, ``client``, ...)
# runs on SQLite only, unless it is marked ``both_backends``: then it runs on SQLite and on
# PostgreSQL (``[sqlite]`` and ``[postgres]`` items; the PostgreSQL one is skipped when
# SSBG_TEST_POSTGRES_URL is not set). Mark a test, or a whole module with
# ``pytestmark = pytest.mark.both_backends``, when its outcome could depend on the dialect:
# row locks and FOR UPDATE, compare-and-set races, concurrency and several processes, the
# audit append and validation SQL (dialect branches in ``ssbg/``), timestamp, UUID and JSON
# round trips, filters and ordering in SQL, constraints, migrations, connection handling and
# durability. Request parsing, authorisation, crypto and storage do not change with the
# database and stay on SQLite.
#
# One backend only: ``@pytest.mark.parametrize("backend", ["postgres"], indirect=True)`` (add
# ``pytest.mark.postgres`` so ``-m postgres`` selects it). A test that names ``backend`` in its
# own parametrization (with ``indirect=["backend"]``, possibly together with other arguments,
# to pick which cases also run on PostgreSQL) is left as it says.

BOTH_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _parametrizes(metafunc: pytest.Metafunc, name: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [part.strip() for part in names.split(",")]
        if name in names:
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    # The gateway's own logging from the start: structlog's unconfigured default renders an
    # exception with rich's traceback and every frame's locals (tens of thousands of lines for
    # one database error, minutes of a run).
    configure_logging("INFO", "console")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames or _parametrizes(metafunc, "backend"):
        return
    both = metafunc.definition.get_closest_marker("both_backends") is not None
    metafunc.parametrize("backend", BOTH_BACKENDS if both else ["sqlite"], indirect=True)


@pytest.fixture
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
        pg.drop(name)


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
def key_store(
    shared_key_store: FileKeyStore, request: pytest.FixtureRequest, tmp_path: Path
) -> FileKeyStore:
    """The key store of a test's gateway: the shared one, or — for a test marked
    ``own_key_store`` (it rotates or destroys keys) — a copy of it of the test's own."""
    if request.node.get_closest_marker("own_key_store") is None:
        return shared_key_store
    return copy_key_store(shared_key_store, tmp_path / "keys", TEST_KEY_PASSWORD)


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


def gateway_settings(
    database_url: str, directory: Path, key_store: FileKeyStore, **overrides: object
) -> Settings:
    """A development gateway's settings: its data and objects under ``directory``, the keys of
    ``key_store``."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="development",
        data_dir=directory / "data",
        database_url=database_url,
        storage_path=directory / "objects",
        keystore_dir=key_store.directory,
        key_password=SecretStr(TEST_KEY_PASSWORD),
        # The key store is shared between tests (its keys are slow to derive); each test's
        # chain has an audit anchor of its own.
        audit_anchor_file=directory / "anchor" / "audit-anchor.json",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(
    database_url: str,
    tmp_path: Path,
    key_store: FileKeyStore,
    storage_backend: str,
    settings_overrides: dict[str, object],
    request: pytest.FixtureRequest,
) -> Settings:
    storage: dict[str, object] = {}
    if storage_backend == "s3":
        moto: MotoServer = request.getfixturevalue("moto_server")
        storage = s3_settings(moto.url)
    return gateway_settings(database_url, tmp_path, key_store, **{**storage, **settings_overrides})


@pytest.fixture
async def services(
    settings: Settings, key_store: FileKeyStore, clock: FixedClock
) -> AsyncIterator[Services]:
    built = build_services(settings, clock=clock, key_store=key_store)
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


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory, shared_key_store: FileKeyStore) -> FastAPI:
    """One app per worker, given each test's services by the ``client`` fixture.

    FastAPI builds the models of every route for each new app (about 0.1 s of CPU, most of a
    typical API test's own cost). ``create_app(services=...)`` differs from ``create_app()``
    only in setting ``app.state.services``, where the routes find the services; so this app is
    built without services, and each test's are set there for the test and removed after it.
    A test's request can never reach another test's services, and an app that stopped finding
    its services in ``app.state`` would fail every request instead of using stale ones.
    """
    directory = tmp_path_factory.mktemp("shared-app")
    unused = f"sqlite+aiosqlite:///{directory / 'never-opened.db'}"  # no lifespan runs
    return create_app(gateway_settings(unused, directory, shared_key_store))


@pytest.fixture
async def client(
    shared_app: FastAPI, services: Services, bootstrap_key: IssuedApiKey
) -> AsyncIterator[httpx.AsyncClient]:
    shared_app.state.services = services
    transport = httpx.ASGITransport(
        app=shared_app, client=("192.0.2.10", 50000), raise_app_exceptions=False
    )
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ssbg.test/api/v1"
        ) as http:
            yield http
    finally:
        del shared_app.state.services


@pytest.fixture
async def gateway_url(services: Services, bootstrap_key: IssuedApiKey) -> AsyncIterator[str]:
    """The gateway over real HTTP (uvicorn on a loopback port), for the client commands."""
    async with served(services) as url:
        yield url
