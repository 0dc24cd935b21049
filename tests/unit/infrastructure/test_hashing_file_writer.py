"""HashingFileWriter on real files: exact bytes and SHA-512 whatever the piece and file sizes,
with and without O_DIRECT; the fallbacks when the filesystem refuses direct I/O; disk errors
reach the caller."""

import errno
import fcntl
import hashlib
import os
from pathlib import Path

import pytest

from ssbg.infrastructure import hashing_file_writer
from ssbg.infrastructure.hashing_file_writer import ALIGNMENT, HashingFileWriter

BLOCK = 2 * ALIGNMENT  # small blocks, so a few KiB of data fill and reuse every one of them


def pieces_of(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, offset, turn = [], 0, 0
    while offset < len(data):
        size = sizes[turn % len(sizes)]
        pieces.append(data[offset : offset + size])
        offset, turn = offset + size, turn + 1
    return pieces


def write_all(path: Path, pieces: list[bytes], *, direct: bool = True) -> tuple[int, str, bool]:
    with HashingFileWriter(path, block_size=BLOCK, blocks=2, direct=direct) as writer:
        handed = sum(writer.write(piece) for piece in pieces)
        last, digest = writer.finish()
        return handed + last, digest, writer.direct


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
@pytest.mark.parametrize(
    "size",
    [0, 1, ALIGNMENT - 1, ALIGNMENT, ALIGNMENT + 1, BLOCK - 1, BLOCK, BLOCK + 1, 7 * BLOCK + 99],
)
def test_the_file_and_its_digest_are_exactly_what_was_written(
    tmp_path: Path, size: int, direct: bool
) -> None:
    data = os.urandom(size)
    target = tmp_path / "restored.bin"

    handed, digest, _ = write_all(target, pieces_of(data, [1, 4097, 3, BLOCK + 5]), direct=direct)

    assert target.read_bytes() == data
    assert (handed, digest) == (size, hashlib.sha512(data).hexdigest())


def require_direct_io(folder: Path) -> None:
    if not hashing_file_writer.O_DIRECT:
        pytest.skip("this platform has no O_DIRECT")
    try:
        probe = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | hashing_file_writer.O_DIRECT)
    except OSError:
        pytest.skip("the test folder's filesystem refuses O_DIRECT")
    os.close(probe)
    (folder / "probe").unlink()


def test_direct_io_is_used_where_the_filesystem_allows_it(tmp_path: Path) -> None:
    require_direct_io(tmp_path)

    *_, direct = write_all(tmp_path / "restored.bin", [b"x" * (BLOCK + 1)])

    assert direct is True


def test_an_existing_file_is_replaced_and_made_private(tmp_path: Path) -> None:
    target = tmp_path / "restored.bin"
    target.write_bytes(b"an older, longer file " * 1000)
    target.chmod(0o644)

    write_all(target, [b"new"])

    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600


def assert_written_without_direct_io(target: Path, data: bytes) -> None:
    _, digest, direct = write_all(target, [data])

    assert direct is False
    assert target.read_bytes() == data
    assert digest == hashlib.sha512(data).hexdigest()


def test_a_filesystem_refusing_o_direct_at_open_gets_ordinary_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refuse_direct(path: Path, flags: int, mode: int = 0o777) -> int:
        if flags & hashing_file_writer.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(hashing_file_writer, "O_DIRECT", os.O_APPEND)  # a flag on every platform
    monkeypatch.setattr(os, "open", refuse_direct)
    data = os.urandom(3 * BLOCK + 10)

    assert_written_without_direct_io(tmp_path / "restored.bin", data)


def test_a_filesystem_refusing_the_first_direct_write_gets_ordinary_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_direct_io(tmp_path)
    real_pwrite = os.pwrite

    def refuse_while_direct(fd: int, data: memoryview, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & hashing_file_writer.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", refuse_while_direct)
    data = os.urandom(2 * BLOCK + 3)

    assert_written_without_direct_io(tmp_path / "restored.bin", data)


def test_a_full_disk_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", disk_full)

    with pytest.raises(OSError, match="No space left") as raised:
        write_all(tmp_path / "restored.bin", [os.urandom(5 * BLOCK)])

    assert raised.value.errno == errno.ENOSPC


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_an_exclusive_writer_never_opens_an_existing_file(tmp_path: Path, direct: bool) -> None:
    existing = tmp_path / "someone-elses.partial"
    existing.write_bytes(b"not ours")

    with pytest.raises(FileExistsError):
        HashingFileWriter(existing, exclusive=True, direct=direct)

    assert existing.read_bytes() == b"not ours"
