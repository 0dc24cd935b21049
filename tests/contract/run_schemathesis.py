"""``make schemathesis``: the gateway against its own OpenAPI description, bounded and repeatable.

Starts ``ssbg serve`` on a fresh data directory and a free port, takes the bootstrap
``super_admin`` key from its first-start output, runs schemathesis with every check but
``use_after_free`` and a fixed seed, stops the gateway, and fails on any finding or on any
traceback in the gateway's log. See docs/development.md ("Contract run").

    python -m tests.contract.run_schemathesis [--max-examples N] [--seed S] [--keep]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.processes import ServeProcess

ROOT = Path(__file__).resolve().parents[2]
KEY_LINE = re.compile(r"API key:\s+(ssbg_[0-9a-f]+)")
# What the gateway's log must never show: an unhandled exception (a 500) or a traceback.
LOG_FAILURES = re.compile(r"Traceback|unhandled_exception|status=500")
KEY_TIMEOUT_SECONDS = 30.0

# The gateway under test: its own data directory, and an auth-failure limit it never reaches —
# schemathesis sends thousands of requests without a key on purpose (ignored_auth,
# missing_required_header), and those checks require the 401 a missing key gets, not the 429
# that throttling answers once an address has failed too often (declared, and tested in
# tests/integration/api/test_auth_throttling_api.py).
GATEWAY_ENV = {"SSBG_AUTH_FAILURE_LIMIT": "1000000", "SSBG_LOG_FORMAT": "console"}

# use_after_free: a deleted backup and a revoked API key stay readable by design, with status
# DELETED / REVOKED, because the audit trail needs them.
EXCLUDED_CHECKS = "use_after_free"


def bootstrap_key(log: Path, gateway: ServeProcess) -> str:
    deadline = time.monotonic() + KEY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        match = KEY_LINE.search(log.read_text(errors="replace")) if log.exists() else None
        if match:
            return match.group(1)
        if gateway.process is not None and gateway.process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"no bootstrap key in {log}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the data directory and log")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ssbg-schemathesis-"))
    env = {**GATEWAY_ENV, "SSBG_DATA_DIR": str(workdir / "data")}
    gateway = ServeProcess(env, workdir, workers=1)
    log = workdir / f"serve-{gateway.port}.log"
    started = time.monotonic()
    returncode = 1
    try:
        gateway.start()
        key = bootstrap_key(log, gateway)
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{gateway.root_url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED_CHECKS,
            "--header",
            f"X-API-Key: {key}",
            "--max-examples",
            str(args.max_examples),
            "--seed",
            str(args.seed),
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ]
        hooks_env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract.hooks"}
        returncode = subprocess.run(command, cwd=ROOT, env=hooks_env, check=False).returncode
    finally:
        gateway.stop()
    text = log.read_text(errors="replace") if log.exists() else ""
    problems = [line for line in text.splitlines() if LOG_FAILURES.search(line)]
    for line in problems[:20]:
        print(f"gateway log: {line}", file=sys.stderr)
    failed = returncode != 0 or bool(problems)
    print(
        f"schemathesis: exit {returncode}, {len(problems)} error line(s) in the gateway "
        f"log, {time.monotonic() - started:.0f} s"
    )
    if failed or args.keep:
        print(f"kept for inspection: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
