"""The anchor's file: compare-and-swap under a lock, written atomically, private."""

import stat
import threading
from pathlib import Path

from ssbg.infrastructure.crypto.audit_anchor import AnchorFile


def test_a_missing_file_reads_as_none_and_is_created_private(tmp_path: Path) -> None:
    anchor = AnchorFile(tmp_path / "keys" / "audit-anchor.json")

    assert anchor.read() is None
    assert anchor.compare_and_swap(None, b"first\n") is True

    assert anchor.read() == b"first\n"
    assert stat.S_IMODE(anchor.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(anchor.path.parent.stat().st_mode) == 0o700
    # Nothing but the anchor and its lock file is left behind (no temporary file).
    assert sorted(p.name for p in anchor.path.parent.iterdir()) == [
        "audit-anchor.json",
        "audit-anchor.json.lock",
    ]


def test_the_file_is_only_replaced_while_it_holds_what_was_read(tmp_path: Path) -> None:
    anchor = AnchorFile(tmp_path / "audit-anchor.json")
    anchor.compare_and_swap(None, b"one\n")

    assert anchor.compare_and_swap(None, b"stale\n") is False  # it exists now
    assert anchor.compare_and_swap(b"other\n", b"stale\n") is False
    assert anchor.read() == b"one\n"
    assert anchor.compare_and_swap(b"one\n", b"two\n") is True
    assert anchor.read() == b"two\n"
    assert stat.S_IMODE(anchor.path.stat().st_mode) == 0o600


def test_concurrent_swaps_never_lose_an_update(tmp_path: Path) -> None:
    """Many writers each add one to a counter by read, then compare-and-swap, retrying when
    another got there first: with the lock, every increment lands exactly once."""
    anchor = AnchorFile(tmp_path / "counter")
    anchor.compare_and_swap(None, b"0")
    writers, increments = 8, 25

    def writer() -> None:
        for _ in range(increments):
            while True:
                current = anchor.read()
                assert current is not None
                if anchor.compare_and_swap(current, str(int(current) + 1).encode()):
                    break

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert anchor.read() == str(writers * increments).encode()
