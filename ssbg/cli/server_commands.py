"""Server-side commands: ``ssbg init``, ``ssbg serve``, ``ssbg migrate``.

The server stack (database, migrations, services) is imported when one of these commands runs,
not when ``ssbg`` starts: see ``settings_loader``.
"""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ssbg.cli.issued_keys import print_secrets_once
from ssbg.cli.settings_loader import EXIT_USAGE, err, load_settings
from ssbg.domain.errors import SsbgError

if TYPE_CHECKING:
    from ssbg.services.bootstrap_service import InitResult
    from ssbg.settings import Settings

out = Console()


async def _migrate(settings: "Settings") -> None:
    from ssbg.infrastructure.db import migrate as migrations

    if settings.is_sqlite:
        from ssbg.infrastructure.private_files import make_private_directories

        # The data directory holds the database and (by default) keys and objects: owner only.
        make_private_directories(settings.data_dir)
    await migrations.upgrade(settings.resolved_database_url)


async def _initialize(settings: "Settings") -> "InitResult":
    from ssbg.services.container import build_services

    await _migrate(settings)
    services = build_services(settings)
    try:
        return await services.bootstrap.initialize(
            bootstrap_api_key=settings.bootstrap_api_key.get_secret_value()
            if settings.bootstrap_api_key
            else None,
            bootstrap_totp_secret=settings.bootstrap_totp_secret.get_secret_value()
            if settings.bootstrap_totp_secret
            else None,
        )
    finally:
        await services.close()


async def _is_initialized(settings: "Settings") -> bool:
    from ssbg.services.container import build_services

    services = build_services(settings)
    try:
        return await services.bootstrap.is_initialized()
    finally:
        await services.close()


def _print_bootstrap(result: "InitResult") -> None:
    issued = result.issued
    assert issued is not None
    print_secrets_once(
        "SSBG bootstrap super_admin key — shown once, never stored in clear:",
        api_key=issued.api_key,
        key_id=str(issued.record.id),
        totp_secret=issued.totp_secret,
        totp_uri=issued.totp_uri,
        advice=[
            "Add the TOTP secret to an authenticator app, keep the API key in your secret",
            "manager, then create named keys for people (ssbg api-keys create).",
        ],
    )


def init(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create the schema, key version P-001, the audit signing key and a bootstrap super_admin."""
    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging("WARNING", settings.log_format)
    try:
        result = asyncio.run(_initialize(settings))
    except SsbgError as exc:
        err.print(f"[red]init failed:[/] {exc.message}")
        raise typer.Exit(EXIT_USAGE) from None
    if result.already_initialized:
        if as_json:
            print(json.dumps({"already_initialized": True}))
        else:
            out.print("Already initialised: nothing changed.")
        return
    issued = result.issued
    assert issued is not None
    if as_json:
        print(
            json.dumps(
                {
                    "api_key": issued.api_key,
                    "key_id": str(issued.record.id),
                    "role": issued.record.role.value,
                    "totp_secret": issued.totp_secret,
                    "totp_uri": issued.totp_uri,
                }
            )
        )
    else:
        _print_bootstrap(result)


def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    from ssbg.infrastructure.db import migrate as migrations
    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(_migrate(settings))
    except SsbgError as exc:
        err.print(f"[red]migration failed:[/] {exc.message}")
        raise typer.Exit(EXIT_USAGE) from None
    out.print(f"Schema at revision {migrations.head_revision()}.")


# Seconds an idle HTTP connection stays open (uvicorn defaults to 5).
KEEP_ALIVE_SECONDS = 75
# prometheus-client reads it once, when first imported: so it is named here, not imported
# from ssbg.infrastructure.metrics (which imports prometheus-client).
_MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """A fresh private directory for the workers' metric files, removed when serving ends.

    Set before anything imports prometheus-client, so this process and every worker it
    starts (they inherit the environment) count into files there and a scrape of any worker
    adds them all up (see ssbg.infrastructure.metrics). Fresh at every start: files of an
    earlier run would be counted again. ``mkdtemp`` creates it 0700 — the files hold nothing
    secret, but nobody else should be able to plant counts in them.
    """
    directory = tempfile.mkdtemp(prefix="ssbg-metrics-")
    previous = os.environ.get(_MULTIPROC_DIR_ENV)
    os.environ[_MULTIPROC_DIR_ENV] = directory
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_MULTIPROC_DIR_ENV, None)
        else:
            os.environ[_MULTIPROC_DIR_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


class _Terminated(BaseException):
    """SIGTERM as an exception, so that ``finally`` blocks run on the way out."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@dataclass(frozen=True)
class _Tls:
    cert: Path
    key: Path


class _EncryptedKey(Exception):
    """The private key is encrypted: uvicorn would stop at a terminal prompt for it."""


def _refuse_key_password() -> bytes:
    raise _EncryptedKey


def _tls_files(cert: Path | None, key: Path | None) -> _Tls | None:
    """Both or neither, each readable, and together a certificate with its unencrypted key:
    checked before anything starts, so a mistake is one clear line (exit 2), not a worker's
    traceback after the database was migrated."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise typer.BadParameter("give both or neither.", param_hint="'--tls-cert' / '--tls-key'")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            path.read_bytes()
        except OSError as error:
            err.print(
                f"[red]{option}: cannot read {path}[/] ({error.strerror or error}).", soft_wrap=True
            )
            raise typer.Exit(EXIT_USAGE) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            cert, key, password=_refuse_key_password
        )
    except _EncryptedKey:
        err.print(
            f"[red]--tls-key: {key} is encrypted;[/] give the key without a passphrase.",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE) from None
    except ssl.SSLError:
        err.print(
            f"[red]--tls-cert {cert} and --tls-key {key} are not a PEM certificate and its "
            "private key.[/]",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE) from None
    return _Tls(cert, key)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="PEM certificate (chain): serve HTTPS itself, with --tls-key. For small "
            "single-host sites; normally a TLS reverse proxy does this. Renewal needs a restart.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", help="The certificate's PEM private key, unencrypted."),
    ] = None,
) -> None:
    """Migrate, initialise on first start (development), then serve the API."""
    tls = _tls_files(tls_cert, tls_key)
    # A single-process uvicorn shuts down gracefully on SIGTERM, then raises the signal again
    # so the process ends "killed by SIGTERM": with the default disposition that would skip
    # the metrics directory's removal. Ours turns it into an exception, and the signal is
    # raised once more after the cleanup, so the exit still looks the same.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with _multiprocess_metrics():
            _serve(host, port, workers, tls)
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(host: str, port: int, workers: int, tls: _Tls | None) -> None:
    import uvicorn

    from ssbg.infrastructure.log_config import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        if settings.env == "development":
            result = asyncio.run(_initialize(settings))
            if not result.already_initialized:
                _print_bootstrap(result)
        else:
            asyncio.run(_migrate(settings))
            if not asyncio.run(_is_initialized(settings)):
                err.print("[red]Not initialised.[/] Run `ssbg init` once before `ssbg serve`.")
                raise typer.Exit(EXIT_USAGE)
    except SsbgError as exc:
        err.print(f"[red]cannot start:[/] {exc.message}")
        raise typer.Exit(EXIT_USAGE) from None
    uvicorn.run(
        "ssbg.api.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # Longer than a reverse proxy keeps an idle connection (deploy/Caddyfile: 30 s), so the
        # proxy, not the gateway, closes it: a gateway closing a connection the proxy has just
        # sent a request on answers that request with nothing (a 502 at the proxy).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
