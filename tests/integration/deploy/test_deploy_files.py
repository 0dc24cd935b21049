"""The deployment files in ``deploy/`` and ``.env.example`` are complete and agree with each
other and with the gateway's settings (no container engine runs here: ``make cluster-check``
exercises the Caddyfile's site block; these tests check the rest statically)."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ssbg.cli.server_commands import KEEP_ALIVE_SECONDS
from ssbg.settings import Settings
from tests.support.debian_packages import debian_command

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
CADDYFILE = DEPLOY / "Caddyfile"
ENV_EXAMPLE = ROOT / ".env.example"

SETTING_VARIABLE = re.compile(r"\bSSBG_[A-Z0-9_]+\b")
ENV_LINE = re.compile(r"^#? ?(SSBG_[A-Z0-9_]+)=", re.MULTILINE)
GATEWAYS = ("gateway-1", "gateway-2")


def _settings_variables() -> set[str]:
    return {f"SSBG_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _dockerfile_stages() -> list[str]:
    return re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", DOCKERFILE.read_text(), re.MULTILINE)


def test_the_image_is_multi_stage_non_root_and_checks_readiness() -> None:
    text = DOCKERFILE.read_text()
    assert len(_dockerfile_stages()) >= 2
    assert "COPY --from=build" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    healthcheck = re.search(r"^HEALTHCHECK .*?(?<!\\)$", text, re.MULTILINE | re.DOTALL)
    assert healthcheck is not None
    assert "/api/v1/health/ready" in healthcheck.group(0)
    # Read-only root filesystem: nothing is compiled or written at run time.
    assert "PYTHONDONTWRITEBYTECODE=1" in text


def test_compose_has_two_gateways_postgres_15_or_later_minio_and_caddy() -> None:
    services = _compose()["services"]
    assert set(GATEWAYS) <= set(services)
    image = services["postgres"]["image"]
    major = re.match(r"postgres:(\d+)", image)
    assert major is not None, image
    assert int(major.group(1)) >= 15, image
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["caddy"]["image"].startswith("caddy:")
    for name in GATEWAYS:
        gateway = services[name]
        assert gateway["read_only"] is True
        assert gateway["environment"]["SSBG_ENV"] == "production"
        assert "keys:/keys" in gateway["volumes"]
        assert gateway["environment"]["SSBG_KEYSTORE_DIR"] == "/keys"


def test_compose_trusts_exactly_caddy_as_a_proxy() -> None:
    compose = _compose()
    caddy_address = compose["services"]["caddy"]["networks"]["default"]["ipv4_address"]
    for name in GATEWAYS:
        trusted = compose["services"][name]["environment"]["SSBG_TRUSTED_PROXIES"]
        assert trusted == f"{caddy_address}/32"


def test_the_key_store_volume_says_why_it_is_not_in_the_database() -> None:
    assert "keys" in _compose()["volumes"]
    text = COMPOSE.read_text()
    comment = text[text.index("\nvolumes:") :]
    assert "NOT in the database" in comment


def test_every_ssbg_variable_in_compose_is_a_setting() -> None:
    used = set(SETTING_VARIABLE.findall(COMPOSE.read_text()))
    assert used, "compose.yaml sets no SSBG_* variable"
    assert used <= _settings_variables(), used - _settings_variables()


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = ENV_LINE.findall(ENV_EXAMPLE.read_text())
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    assert set(listed) == _settings_variables(), {
        "not settings": set(listed) - _settings_variables(),
        "missing": _settings_variables() - set(listed),
    }


def test_every_env_example_variable_is_commented_and_production_values_are_marked() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^#? ?[A-Z][A-Z0-9_]*=", line):
            above = number - 1
            while re.match(r"^#? ?[A-Z][A-Z0-9_]*=", lines[above]):
                above -= 1  # a group of variables under one comment
            assert lines[above].startswith("# "), f"no comment above {line!r}"
    assert "[production]" in ENV_EXAMPLE.read_text()


def test_env_example_is_accepted_by_the_settings_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its uncommented values, with what the compose file adds, load as a production
    configuration (no placeholder or short secret refused)."""
    for name in list(_settings_variables()):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    environment = _compose()["services"]["gateway-1"]["environment"]
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name, value in {**values, **environment}.items():
        if name.startswith("SSBG_"):
            monkeypatch.setenv(name, re.sub(r"\$\{[^}]*\}", "secret-password", str(value)))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "production"
    assert settings.storage_backend == "s3"
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")


def _caddy_upstreams() -> list[str]:
    match = re.search(r"^\s*reverse_proxy\s+([^{\n]+)\{", CADDYFILE.read_text(), re.MULTILINE)
    assert match is not None
    return match.group(1).split()


def test_caddyfile_upstreams_are_the_compose_gateways() -> None:
    services = _compose()["services"]
    upstreams = _caddy_upstreams()
    assert sorted(upstreams) == [f"{name}:8000" for name in GATEWAYS]
    for name in GATEWAYS:
        assert services[name]["expose"] == ["8000"]
    text = CADDYFILE.read_text()
    assert "health_uri /api/v1/health/ready" in text
    assert re.search(r"lb_try_duration \d+s", text)


def test_caddy_closes_idle_upstream_connections_before_the_gateway_does() -> None:
    # The other way round, a request Caddy sends on a connection the replica is closing gets
    # no answer (a 502).
    match = re.search(r"^\s*keepalive\s+(\d+)s\s*$", CADDYFILE.read_text(), re.MULTILINE)
    assert match is not None, "the Caddyfile's transport sets no keepalive"
    assert int(match.group(1)) + 30 <= KEEP_ALIVE_SECONDS


def test_the_local_cluster_uses_the_deploy_caddyfile_site_block() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import cluster
    finally:
        sys.path.remove(str(ROOT / "bench"))
    local = cluster.local_caddyfile(8443, 8080, [9001, 9002], Path("/srv/caddy"))
    assert "reverse_proxy 127.0.0.1:9001 127.0.0.1:9002 {" in local
    assert "tls internal" in local
    deploy_block = CADDYFILE.read_text().split("reverse_proxy", 1)[1].split("\n\t}\n")[0]
    local_block = local.split("reverse_proxy", 1)[1].split("\n\t}\n")[0]
    assert local_block.split("{", 1)[1] == deploy_block.split("{", 1)[1]


def test_caddy_accepts_the_caddyfile(tmp_path: Path) -> None:
    """Debian's caddy (installed when missing, as `make cluster` does) parses it."""
    caddy = debian_command("caddy")
    result = subprocess.run(
        [str(caddy), "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={"SITE_ADDRESS": "backup.example.org", "HOME": str(tmp_path)},
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"gateway-1:8000" in result.stdout
