"""The production shape on one machine, without containers (``make cluster``, SPEC §13.6).

PostgreSQL (a fresh ``ssbg_cluster_<hex>`` database beside ``SSBG_CLUSTER_POSTGRES_URL``, else
``SSBG_TEST_POSTGRES_URL``, else ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``), an S3
server (moto's, from the dev extras), two ``ssbg serve --workers 2`` replicas with
``SSBG_ENV=production`` sharing one key store directory, and Caddy terminating TLS on loopback
with its internal CA, configured from ``deploy/Caddyfile`` (the same reverse_proxy block, the
upstreams and the site address replaced). Everything lives under ``./cluster-data/``
(git-ignored): ``cluster.json`` (0600: PIDs, ports, URL, CA file, bootstrap key), the key
store, Caddy's storage and ``logs/``.

Usage: ``make cluster`` / ``make cluster-stop``, or
``.venv/bin/python bench/cluster.py start|stop|status``. Every process runs in its own process
group, and stop signals the groups it recorded (a replica's uvicorn workers go with it).
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SSBG_CLUSTER_DIR", ROOT / "cluster-data")).resolve()
STATE = DATA / "cluster.json"
DEPLOY_CADDYFILE = ROOT / "deploy" / "Caddyfile"
BIN = Path(sys.executable).parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MIB = 1024 * 1024
REPLICAS = 2
WORKERS = 2
READY_TIMEOUT = 90.0
# The deploy file's upstreams and site address, replaced for loopback.
DEPLOY_UPSTREAMS = "gateway-1:8000 gateway-2:8000"
DEPLOY_SITE = "{$SITE_ADDRESS}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ClusterState:
    url: str
    ca_file: str
    api_key: str
    totp_secret: str
    database: str
    admin_dsn: str
    s3_url: str
    replica_ports: list[int]
    caddy_port: int
    env: dict[str, str]
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/api/v1" for port in self.replica_ports]

    def save(self) -> None:
        STATE.write_text(json.dumps(asdict(self), indent=2) + "\n")
        STATE.chmod(0o600)

    @classmethod
    def load(cls) -> "ClusterState":
        if not STATE.exists():
            raise SystemExit(f"no cluster: {STATE} does not exist (make cluster)")
        return cls(**json.loads(STATE.read_text()))


def local_caddyfile(port: int, http_port: int, upstreams: list[int], storage: Path) -> str:
    """``deploy/Caddyfile`` for loopback: its site block with the replicas' loopback ports,
    ``tls internal`` and ``bind 127.0.0.1``; its global options replaced by local ones (no
    admin endpoint, no trust-store install, Caddy's storage and CA under cluster-data)."""
    text = DEPLOY_CADDYFILE.read_text()
    site = text[text.index(DEPLOY_SITE) :]
    if DEPLOY_UPSTREAMS not in site:
        raise SystemExit(f"{DEPLOY_CADDYFILE}: no 'reverse_proxy {DEPLOY_UPSTREAMS}' line")
    site = site.replace(DEPLOY_UPSTREAMS, " ".join(f"127.0.0.1:{p}" for p in upstreams))
    site = site.replace(
        DEPLOY_SITE + " {",
        f"https://localhost:{port} {{\n\tbind 127.0.0.1\n\ttls internal",
        1,
    )
    site = re.sub(r"\n\tlog \{.*?\n\t\}", "", site, flags=re.DOTALL)  # no access log here
    return (
        "{\n"
        "\tadmin off\n"
        "\tskip_install_trust\n"
        "\tauto_https disable_redirects\n"
        f"\thttp_port {http_port}\n"
        f"\thttps_port {port}\n"
        f"\tstorage file_system {storage}\n"
        "}\n\n" + site
    )


def _spawn(name: str, command: list[str], env: dict[str, str] | None = None) -> int:
    """A child in its own process group (its PID is the group's id), logging to logs/."""
    log = (DATA / "logs" / f"{name}.log").open("ab")
    process = subprocess.Popen(
        command,
        env=env,
        cwd=DATA,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return process.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of ours that exited stays a zombie until reaped.
    with contextlib.suppress(ChildProcessError):
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    return True


def _wait_ready(url: str, pid: int, what: str, **client: Any) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise SystemExit(f"{what} exited; see {DATA / 'logs'}")
        try:
            if httpx.get(url, timeout=2, **client).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not become ready at {url}")


def signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def stop_group(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there after ``timeout``."""
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.05)
    signal_group(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-pgid, os.WNOHANG)[0] > 0:
            pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def _pg(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn.replace("+asyncpg", ""))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def start_replica(state: ClusterState, index: int) -> None:
    """``ssbg serve --workers 2`` on the replica's port; returns once it is ready."""
    name = f"replica-{index + 1}"
    port = state.replica_ports[index]
    command = [str(BIN / "ssbg"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    pid = _spawn(name, [*command, "--workers", str(WORKERS)], state.env)
    state.pids[name] = pid
    state.save()
    _wait_ready(f"{state.replica_urls[index]}/health/ready", pid, name)


def kill_replica(state: ClusterState, index: int) -> None:
    """``kill -9`` the replica's whole process group: the uvicorn supervisor and its workers."""
    name = f"replica-{index + 1}"
    pid = state.pids.pop(name)
    signal_group(pid, signal.SIGKILL)
    while _group_alive(pid):
        time.sleep(0.01)
    state.save()


def start(env_overrides: dict[str, str] | None = None, *, quiet: bool = False) -> ClusterState:
    if STATE.exists():
        raise SystemExit(f"a cluster is already recorded in {STATE}: make cluster-stop first")
    if shutil.which("caddy") is None:
        raise SystemExit("caddy is not installed: apt-get install -y caddy (make cluster does)")
    DATA.mkdir(mode=0o700, parents=True, exist_ok=True)
    (DATA / "logs").mkdir(exist_ok=True)
    base = (
        os.environ.get("SSBG_CLUSTER_POSTGRES_URL")
        or os.environ.get("SSBG_TEST_POSTGRES_URL")
        or DEFAULT_PG
    )
    database = f"ssbg_cluster_{uuid.uuid4().hex[:10]}"
    s3_port, caddy_port = free_port(), free_port()
    state = ClusterState(
        url=f"https://localhost:{caddy_port}/api/v1",
        ca_file=str(DATA / "caddy" / "pki" / "authorities" / "local" / "root.crt"),
        api_key="",
        totp_secret="",
        database=database,
        admin_dsn=base,
        s3_url=f"http://127.0.0.1:{s3_port}",
        replica_ports=[free_port() for _ in range(REPLICAS)],
        caddy_port=caddy_port,
        env={},
    )
    asyncio.run(_pg(base, f'CREATE DATABASE "{database}"'))
    state.save()  # from here on, cluster-stop drops the database
    try:
        _start_all(state, env_overrides or {})
    except BaseException:
        stop(quiet=True)
        raise
    if not quiet:
        print(f"SSBG cluster ({REPLICAS} replicas x {WORKERS} workers, PostgreSQL, S3, Caddy)")
        print(f"  URL:           {state.url}")
        print(f"  CA file:       {state.ca_file}")
        print(f"  bootstrap key: {state.api_key}")
        print(f"  TOTP secret:   {state.totp_secret}")
        print(f"  replicas:      {', '.join(state.replica_urls)}")
        print(f"  logs:          {DATA / 'logs'}; stop with make cluster-stop")
        print(f"  e.g. curl --cacert {state.ca_file} -H 'X-API-Key: ...' {state.url}/me")
        root = state.url.removesuffix("/api/v1")
        print(f"  client: export SSBG_URL={root} SSL_CERT_FILE={state.ca_file}")
    return state


def _start_all(state: ClusterState, env_overrides: dict[str, str]) -> None:
    s3_port = state.s3_url.rsplit(":", 1)[1]
    state.pids["s3"] = _spawn(
        "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", s3_port]
    )
    state.save()
    _wait_ready(f"{state.s3_url}/moto-api/", state.pids["s3"], "moto S3 server")
    bucket = "ssbg-cluster"
    boto3.client(
        "s3",
        endpoint_url=state.s3_url,
        region_name="us-east-1",
        aws_access_key_id="cluster",
        aws_secret_access_key="cluster-secret",  # noqa: S106 (a throw-away local S3 server)
    ).create_bucket(Bucket=bucket)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SSBG_")}
    state.env = {
        **inherited,
        "SSBG_ENV": "production",
        "SSBG_DATA_DIR": str(DATA / "data"),
        "SSBG_DATABASE_URL": state.admin_dsn.rsplit("/", 1)[0] + f"/{state.database}",
        "SSBG_STORAGE_BACKEND": "s3",
        "SSBG_S3_ENDPOINT_URL": state.s3_url,
        "SSBG_S3_BUCKET": bucket,
        "SSBG_S3_REGION": "us-east-1",
        "SSBG_S3_ACCESS_KEY_ID": "cluster",
        "SSBG_S3_SECRET_ACCESS_KEY": "cluster-secret",
        # One key store directory for both replicas: the deploy's shared volume.
        "SSBG_KEYSTORE_DIR": str(DATA / "keys"),
        "SSBG_KEY_PASSWORD": secrets.token_urlsafe(24),
        # Caddy is the only client the replicas see; it sends X-Forwarded-For.
        "SSBG_TRUSTED_PROXIES": "127.0.0.1/32",
        "SSBG_MAX_UPLOAD_BYTES": str(1024 * MIB),
        "SSBG_LOG_LEVEL": "WARNING",
        "SSBG_LOG_FORMAT": "json",
        **env_overrides,
    }
    state.save()
    init = subprocess.run(
        [str(BIN / "ssbg"), "init", "--json"],
        env=state.env,
        cwd=DATA,
        capture_output=True,
        check=False,
    )
    if init.returncode != 0:
        raise SystemExit(f"ssbg init failed: {init.stderr.decode(errors='replace')[-2000:]}")
    bootstrap = json.loads(init.stdout)
    state.api_key, state.totp_secret = bootstrap["api_key"], bootstrap["totp_secret"]
    state.save()
    for index in range(REPLICAS):
        start_replica(state, index)
    caddy_dir = DATA / "caddy"
    caddy_dir.mkdir(mode=0o700, exist_ok=True)
    caddyfile = DATA / "Caddyfile"
    caddyfile.write_text(
        local_caddyfile(state.caddy_port, free_port(), state.replica_ports, caddy_dir)
    )
    caddy_env = {**os.environ, "HOME": str(caddy_dir), "XDG_DATA_HOME": str(caddy_dir)}
    caddy_env |= {"XDG_CONFIG_HOME": str(caddy_dir)}
    state.pids["caddy"] = _spawn(
        "caddy",
        ["caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        caddy_env,
    )
    state.save()
    deadline = time.monotonic() + READY_TIMEOUT
    while not Path(state.ca_file).exists():
        if time.monotonic() > deadline or not _alive(state.pids["caddy"]):
            raise SystemExit(f"Caddy did not create its CA; see {DATA / 'logs' / 'caddy.log'}")
        time.sleep(0.05)
    _wait_ready(f"{state.url}/health/ready", state.pids["caddy"], "Caddy", verify=state.ca_file)


def stop(*, quiet: bool = False) -> None:
    """Stop every recorded process group (Caddy first), drop the database, remove the data
    (the logs stay)."""
    if not STATE.exists():
        if not quiet:
            print("no cluster recorded")
        return
    state = ClusterState.load()
    for name in ("caddy", *(f"replica-{i + 1}" for i in range(REPLICAS)), "s3"):
        pid = state.pids.get(name)
        if pid is not None:
            stop_group(pid)
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        asyncio.run(
            _pg(state.admin_dsn, f'DROP DATABASE IF EXISTS "{state.database}" WITH (FORCE)')
        )
    for name in ("data", "keys", "caddy", "Caddyfile"):
        path = DATA / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    STATE.unlink()
    if not quiet:
        print(f"cluster stopped; database {state.database} dropped; logs in {DATA / 'logs'}")


def status() -> None:
    state = ClusterState.load()
    for name, pid in state.pids.items():
        print(f"{name:<10} pid {pid:<8} {'running' if _group_alive(pid) else 'GONE'}")
    print(f"URL {state.url}  CA {state.ca_file}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    args = parser.parse_args()
    {"start": lambda: start(), "stop": stop, "status": status}[args.command]()


if __name__ == "__main__":
    main()
