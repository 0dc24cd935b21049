"""A separate OS process appending audit entries: ``python -m tests.support.append_worker``.

Configuration comes from ``SSBG_*`` variables, exactly as a gateway replica's would.
Arguments: number of appends, worker name, a "go" file to wait for (so all workers start
appending at the same moment).
"""

import asyncio
import sys
import time
from pathlib import Path

from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.services.container import build_services
from ssbg.settings import Settings


def wait_for(go_file: Path) -> None:
    """A start barrier (so every worker appends at once), not a timing assumption."""
    while not go_file.exists():
        time.sleep(0.01)


async def main(count: int, worker: str, go_file: Path) -> None:
    services = build_services(Settings())
    try:
        await services.db.ping()
        await asyncio.to_thread(wait_for, go_file)
        for n in range(count):
            async with services.db.transaction(write=True) as tx:
                await services.trail.append(
                    tx,
                    AuditEvent(
                        action=AuditAction.SYSTEM_START,
                        resource=SYSTEM_RESOURCE,
                        result=AuditResult.SUCCESS,
                        details={"worker": worker, "n": n},
                    ),
                )
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
