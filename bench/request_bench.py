"""Request benchmark: what one authenticated request costs the gateway, end to end.

A real uvicorn serving the gateway (``ssbg init`` + ``ssbg.api.app:create_served_app``) on
PostgreSQL (a scratch database on ``SSBG_BENCH_POSTGRES_URL`` or ``SSBG_TEST_POSTGRES_URL``,
default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) or SQLite. One client on one
keep-alive connection sends, in turn:

* ``GET /me`` — authentication alone (the API key's verifier, the key's record and its seal);
* ``GET /backups?limit=20`` — authentication, a page of 20 sealed backup records.

Each is timed over ``--requests`` requests (default 2,000), ``--runs`` times (default 3); the
median run is reported as requests/s and mean ms per request. Run it on two commits to see
what a change costs per request.
Usage: ``make bench-requests`` or
``.venv/bin/python bench/request_bench.py [--backend postgres|sqlite] [--requests N]
[--runs N] [--smoke]``; ``--smoke`` sends 20 of each once and prints no figures.
"""

import argparse
import contextlib
import os
import statistics
import time

import httpx
from harness import Gateway, make_workdir, scratch_database

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKUPS = 20


def _time(client: httpx.Client, path: str, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
    return time.perf_counter() - started


def run(gateway: Gateway, requests: int, runs: int) -> dict[str, float]:
    with httpx.Client(base_url=gateway.url, headers={"X-API-Key": gateway.api_key}) as client:
        for number in range(BACKUPS):
            stored = client.post(
                "/backups",
                params={
                    "classification": "INTERNAL",
                    "source_system": "bench",
                    "filename": f"b{number}",
                },
                headers={"Content-Type": "application/octet-stream"},
                content=os.urandom(1024),
            )
            if stored.status_code != 201:
                raise SystemExit(f"upload: {stored.status_code} {stored.text[:200]}")
        _time(client, "/me", 50)  # warm up connections and caches
        return {
            path: statistics.median(_time(client, path, requests) for _ in range(runs))
            for path in ("/me", f"/backups?limit={BACKUPS}")
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="20 requests once, no figures")
    args = parser.parse_args()
    requests, runs = (20, 1) if args.smoke else (args.requests, args.runs)
    workdir = make_workdir("ssbg-bench-requests-")
    pg = os.environ.get("SSBG_BENCH_POSTGRES_URL") or os.environ.get("SSBG_TEST_POSTGRES_URL")
    with contextlib.ExitStack() as stack:
        extra: dict[str, str] = {}
        if args.backend == "postgres":
            if args.smoke and not pg:
                print("requests: smoke run, PostgreSQL skipped (SSBG_TEST_POSTGRES_URL unset)")
                return
            extra["SSBG_DATABASE_URL"] = stack.enter_context(scratch_database(pg or DEFAULT_PG))
        gateway = Gateway(workdir, extra)
        try:
            gateway.start()
            seconds = run(gateway, requests, runs)
        finally:
            gateway.stop()
    if args.smoke:
        print(f"requests: smoke run on {args.backend}, {len(seconds)} kinds of request answered")
        return
    print(f"| {args.backend}, {requests} requests, median of {runs} | requests/s | ms each |")
    print("|---|---|---|")
    for path, elapsed in seconds.items():
        print(f"| GET {path} | {requests / elapsed:,.0f} | {elapsed / requests * 1000:.2f} |")


if __name__ == "__main__":
    main()
