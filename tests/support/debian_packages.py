"""Commands from Debian packages a test needs (chromium, caddy), installed when missing.

``apt-get install -y`` runs only as root (CI is); elsewhere the test is skipped, saying what
to install. One lock file per package, since pytest-xdist workers may both get there.
"""

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _install(package: str) -> None:
    with Path(f"/tmp/ssbg-{package}-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which(package) is not None:  # another worker installed it meanwhile
            return
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", package]
        if subprocess.run(install, env=environment, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=environment, check=True)
            subprocess.run(install, env=environment, check=True)


def debian_command(package: str) -> Path:
    """The command ``package`` installs under its own name (found on ``PATH``), installed
    first if it is missing; skips the test where it cannot be installed."""
    found = shutil.which(package)
    if found is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(f"{package} is missing; install it with apt-get install {package}")
        _install(package)
        found = shutil.which(package)
        assert found is not None, f"apt-get installed {package} but no {package} command"
    return Path(found)
