"""Run the real ``ssbg`` command in a subprocess with a controlled environment."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_ssbg(
    *arguments: str,
    env: dict[str, str],
    timeout: float = 120,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SSBG_")}
    return subprocess.run(
        [sys.executable, "-m", "ssbg", *arguments],
        env={**clean, **env},
        cwd=cwd or env.get("SSBG_DATA_DIR", str(PROJECT_ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )
