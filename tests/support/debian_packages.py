"""Debian packages a test needs (Debian's chromium, caddy), installed when missing.

``apt-get install -y`` runs only as root (CI is); elsewhere the test is skipped, saying what
to install. One lock file per package, since pytest-xdist workers may both get there.
"""

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _install(package: str, executable: Path) -> None:
    with Path(f"/tmp/ssbg-{package}-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if executable.exists():
            return
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", package]
        if subprocess.run(install, env=environment, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=environment, check=True)
            subprocess.run(install, env=environment, check=True)


def debian_executable(package: str, executable: Path) -> Path:
    """``executable`` from Debian's ``package``, installed first if it is missing; skips the
    test where it cannot be installed."""
    if not executable.exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(f"{executable} is missing; install it with apt-get install {package}")
        _install(package, executable)
    return executable
