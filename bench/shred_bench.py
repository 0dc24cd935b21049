"""Crypto-shred benchmark: destroying a key version that protects many backups.

A scratch database (PostgreSQL on ``SSBG_BENCH_POSTGRES_URL`` or ``SSBG_TEST_POSTGRES_URL``,
default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``, or SQLite) is initialised,
``--backups`` backup records (default 10,000; sealed, as the gateway writes them, without
objects: a shred never reads them) are written under ``P-001``, the key is rotated, and
``P-001`` is crypto-shredded through the gateway's own service: key file destroyed, version
``DESTROYED``, every backup ``CRYPTO_SHREDDED`` with its transition row and audit entry, the
certificate signed. Prints the time of the shred (goal: under 10 s for 10,000 on PostgreSQL)
and checks the audit chain afterwards.
Usage: ``make bench-shred`` or
``.venv/bin/python bench/shred_bench.py [--backend postgres|sqlite] [--backups N] [--smoke]``;
``--smoke`` shreds 50 backups and prints no figures.
"""

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

from harness import make_workdir, scratch_database
from pydantic import SecretStr

from ssbg.domain.audit_verification import SequenceRange
from ssbg.domain.enums import BackupStatus, Classification, Role
from ssbg.domain.identity import SYSTEM_CONTEXT, Actor
from ssbg.infrastructure.db.migrate import upgrade
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.services.auth_service import principal_of
from ssbg.services.backups.lifecycle import new_transition
from ssbg.services.container import build_services
from ssbg.settings import Settings

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PASSWORD = "bench-key-password-not-secret"  # noqa: S105 (a throwaway key store)
GOAL_SECONDS = 10.0
INSERT_BATCH = 1_000


async def run(url: str, workdir: Path, backups: int) -> tuple[float, int, bool]:
    await upgrade(url)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="development",
        data_dir=workdir / "data",
        database_url=url,
        key_password=SecretStr(PASSWORD),
    )
    services = build_services(settings)
    try:
        issued = (await services.bootstrap.initialize()).issued
        assert issued is not None
        assert issued.record.role is Role.SUPER_ADMIN
        actor = Actor(principal_of(issued.record), SYSTEM_CONTEXT)
        now = services.clock.now()
        for start in range(0, backups, INSERT_BATCH):
            async with services.db.transaction(write=True) as tx:
                for number in range(start, min(start + INSERT_BATCH, backups)):
                    backup_id = uuid.uuid4()
                    tx.session.add(
                        BackupMetadata(
                            id=backup_id,
                            status=BackupStatus.ACTIVE,
                            classification=Classification.INTERNAL,
                            source_system="bench",
                            content_type="application/octet-stream",
                            original_size=1024,
                            encrypted_size=1120,
                            checksum_plaintext=os.urandom(64).hex(),
                            checksum_ciphertext=os.urandom(64).hex(),
                            key_version="P-001",
                            format_version=1,
                            segment_size=1024 * 1024,
                            storage_backend="local",
                            storage_ref=f"backups/{backup_id}/data.enc",
                            wrapped_dek_ref=f"backups/{backup_id}/dek.wrapped",
                            created_by=issued.record.id,
                            created_at=now + timedelta(microseconds=number),
                            updated_at=now,
                            cleanup_pending=False,
                        )
                    )
                    tx.session.add(
                        new_transition(backup_id, 1, None, BackupStatus.ACTIVE, actor, now)
                    )
        await services.keys.rotate(actor, "benchmark")
        started = time.perf_counter()
        shred = await services.keys.crypto_shred(actor, "P-001", "DESTROY P-001", "benchmark")
        elapsed = time.perf_counter() - started
        valid = (await services.audit_validation.check_chain(SequenceRange())).result.valid
    finally:
        await services.close()
    return elapsed, len(shred.certificate["backups"]), valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="50 backups, no figures")
    args = parser.parse_args()
    backups = 50 if args.smoke else args.backups
    workdir = make_workdir("ssbg-bench-shred-")
    pg = os.environ.get("SSBG_BENCH_POSTGRES_URL") or os.environ.get("SSBG_TEST_POSTGRES_URL")
    if args.backend == "postgres" and args.smoke and not pg:
        print("shred: smoke run, PostgreSQL skipped (SSBG_TEST_POSTGRES_URL unset)")
        return
    with contextlib.ExitStack() as stack:
        if args.backend == "postgres":
            url = stack.enter_context(scratch_database(pg or DEFAULT_PG))
        else:
            url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        elapsed, shredded, valid = asyncio.run(run(url, workdir, backups))
    if shredded != backups or not valid:
        raise SystemExit(f"shredded {shredded} of {backups}; audit chain valid: {valid}")
    if args.smoke:
        print(f"shred: smoke run on {args.backend}, {shredded} backups shredded, chain valid")
        return
    verdict = "met" if elapsed < GOAL_SECONDS else "MISSED"
    goal = f"goal < {GOAL_SECONDS:.0f} s"
    print(f"| {args.backend} | backups | crypto-shred, s | per backup, ms | {goal} |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.backend} | {backups:,} | {elapsed:.2f} | {elapsed / backups * 1000:.2f} "
        f"| {verdict} |"
    )


if __name__ == "__main__":
    main()
