"""Run the real ``ssbg`` command in a subprocess with a controlled environment."""

import os
import subprocess
import sys
from pathlib import Path

import pyotp

from ssbg.services.api_key_service import IssuedApiKey
from tests.support.clock import FixedClock

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def ssbg_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "ssbg", *arguments]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without its ``SSBG_`` settings, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SSBG_")}, **env}


def run_ssbg(
    *arguments: str,
    env: dict[str, str],
    timeout: float = 120,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ssbg_command(*arguments),
        env=child_env(env),
        cwd=cwd or env.get("SSBG_DATA_DIR", str(PROJECT_ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


def env_for(url: str, key: IssuedApiKey, **extra: str) -> dict[str, str]:
    """The environment of a client command run by ``key``'s holder against the gateway at
    ``url`` (no TOTP code unless ``extra`` gives ``SSBG_MFA_TOKEN``)."""
    return {"SSBG_URL": url, "SSBG_API_KEY": key.api_key, "SSBG_MFA_TOKEN": "", **extra}


def fresh_code(key: IssuedApiKey, clock: FixedClock) -> str:
    """A TOTP code of a step not used yet (each code is accepted once): the clock moves on."""
    assert key.totp_secret is not None
    return pyotp.TOTP(key.totp_secret).at(clock.advance(seconds=30))
