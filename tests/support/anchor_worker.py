"""A separate OS process advancing the audit anchor: ``python -m tests.support.anchor_worker``.

Arguments: the database URL, the key store directory, the anchor file, a JSON file listing the
``[sequence, entry_hash]`` targets in the order to advance to them, and a "go" file to wait for
(so every worker starts at once). The key password comes from ``SSBG_KEY_PASSWORD``.
"""

import asyncio
import json
import os
import sys
from pathlib import Path

from ssbg.infrastructure.clock import SystemClock
from ssbg.infrastructure.crypto.audit_anchor import AnchorFile
from ssbg.infrastructure.crypto.audit_signing import CheckpointSigner
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.audit_anchor import AnchorKeeper
from ssbg.services.unit_of_work import open_database
from tests.support.append_worker import wait_for


async def main(
    url: str, keys: Path, anchor_path: Path, plan: list[tuple[int, str]], go_file: Path
) -> None:
    db = open_database(url, pool_size=1)
    signer = CheckpointSigner(FileKeyStore(keys, os.environ["SSBG_KEY_PASSWORD"]))
    keeper = AnchorKeeper(db, signer, AnchorFile(anchor_path), SystemClock(), 60)
    try:
        await signer.key_info()  # the slow key derivation, before the start
        await asyncio.to_thread(wait_for, go_file)
        for sequence, entry_hash in plan:
            await keeper.advance_to(sequence, entry_hash)
    finally:
        await db.dispose()


if __name__ == "__main__":
    url, keys, anchor_path, targets, go_file = sys.argv[1:6]
    plan = json.loads(Path(targets).read_bytes())
    asyncio.run(main(url, Path(keys), Path(anchor_path), plan, Path(go_file)))
