"""Real servers as child processes: the moto S3 server and SSBG gateways (uvicorn).

Waiting for them uses readiness polling with a deadline, never a fixed sleep.
"""

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import httpx

from ssbg.settings import Settings

READY_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_http(
    url: str, process: subprocess.Popen[bytes], what: str, verify: ssl.SSLContext | bool = True
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0, verify=verify).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready at {url}")


class MotoServer:
    """``moto`` in server mode, a real S3 endpoint over HTTP on a free loopback port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (log_dir / f"moto-{self.port}.log").open("wb")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "MotoServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _wait_http(f"{self.url}/moto-api/", self.process, "moto server")
        return self

    def kill(self) -> None:
        """Stop abruptly: every connection drops, new ones are refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        self._log.close()


def gateway_env(settings: Settings, key_password: str) -> dict[str, str]:
    """The ``SSBG_*`` environment that makes a gateway process serve what ``settings`` say."""
    env = {
        "SSBG_ENV": "development",
        "SSBG_DATA_DIR": str(settings.data_dir),
        "SSBG_DATABASE_URL": settings.resolved_database_url,
        "SSBG_STORAGE_BACKEND": settings.storage_backend,
        "SSBG_STORAGE_PATH": str(settings.resolved_storage_path),
        "SSBG_KEYSTORE_DIR": str(settings.resolved_keystore_dir),
        "SSBG_AUDIT_ANCHOR_FILE": str(settings.resolved_audit_anchor_file),
        "SSBG_KEY_PASSWORD": key_password,
        "SSBG_SEGMENT_SIZE": str(settings.segment_size),
        "SSBG_LOG_LEVEL": "WARNING",
    }
    if settings.storage_backend == "s3":
        assert settings.s3_access_key_id is not None
        assert settings.s3_secret_access_key is not None
        env |= {
            "SSBG_S3_ENDPOINT_URL": str(settings.s3_endpoint_url),
            "SSBG_S3_BUCKET": settings.s3_bucket,
            "SSBG_S3_REGION": settings.s3_region,
            "SSBG_S3_ACCESS_KEY_ID": settings.s3_access_key_id.get_secret_value(),
            "SSBG_S3_SECRET_ACCESS_KEY": settings.s3_secret_access_key.get_secret_value(),
        }
    return env


class GatewayProcess:
    """An SSBG gateway run by uvicorn in a child process, on a socket the test owns.

    The listening socket stays open in the test process across a kill and restart, so a
    restarted gateway serves the same address.
    """

    def __init__(self, env: Mapping[str, str], workdir: Path, name: str = "gateway") -> None:
        self._env = {**os.environ, **env}
        self._workdir = workdir
        self._name = name
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self.process: subprocess.Popen[bytes] | None = None
        self._runs = 0

    def start(self) -> "GatewayProcess":
        self._runs += 1
        log = (self._workdir / f"{self._name}-{self.port}-{self._runs}.log").open("wb")
        fd = self._socket.fileno()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "ssbg.api.app:create_served_app",
                "--factory",
                "--fd",
                str(fd),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=self._env,
            cwd=self._workdir,
            pass_fds=[fd],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_http(f"{self.base_url}/health", self.process, self._name)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no cleanup — a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        self._socket.close()


async def wait_until(predicate: Callable[[], Awaitable[bool]], *, within: float = 60.0) -> None:
    """Poll an async predicate until it is true (a deadline, not a guess at timing)."""
    deadline = time.monotonic() + within
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.05)


class ServeProcess:
    """``ssbg serve`` itself (with its ``--workers``) in a child process, on a free port.

    With ``tls=(certificate, key)`` it serves HTTPS (``--tls-cert``/``--tls-key``) and
    ``verify`` is a client context that trusts that certificate.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        workdir: Path,
        *,
        workers: int,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        # Only the gateway's own SSBG_ settings, not whatever the test run's shell has.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("SSBG_")}
        self._env = {**inherited, **env}
        self._workdir = workdir
        self._workers = workers
        self.port = free_port()
        self._tls_args: list[str] = []
        self.verify: ssl.SSLContext | bool = True
        if tls is not None:
            self._tls_args = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
            self.verify = ssl.create_default_context(cafile=str(tls[0]))
        self.root_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServeProcess":
        log = (self._workdir / f"serve-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ssbg",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self._workers),
                *self._tls_args,
            ],
            env=self._env,
            cwd=self._workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_http(f"{self.root_url}/api/v1/health", self.process, "ssbg serve", self.verify)
        return self

    def stop(self) -> int | None:
        """SIGTERM, as a service manager stops it; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode
