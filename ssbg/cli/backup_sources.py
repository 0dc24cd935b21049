"""Where ``ssbg backup`` reads the payload from: a file, standard input, or a producer command.

Every source gives the name stored by default, the size when it is known (a file: sent with
``Content-Length``; a stream: ``None``, sent with chunked transfer encoding), a content type,
and the payload as fixed-size chunks, each reported to a progress callback. Nothing is ever
held whole in memory: at most one chunk at a time.

A stream can be read once. Its first chunk is read before any request is made, so an empty
stream is refused without touching the gateway; and a request that would have to be sent a
second time (to answer an MFA challenge) fails instead of pretending to replay it.

A producer (``ssbg backup - … -- COMMAND ARGS…``) is a child process whose standard output is
the stream. Its exit status is checked *before* the body ends: if it exits non-zero or dies
from a signal, :meth:`ProducerSource.chunks` raises mid-body, the HTTP request is abandoned
without its final chunk, and the gateway — seeing the client disconnect — records the backup
``FAILED`` and removes what it had stored. (A plain shell pipe cannot do this: ``cmd | ssbg
backup -`` only sees end-of-file, whatever ``cmd``'s exit status.)
"""

import mimetypes
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import httpx

from ssbg.cli.client import ClientFailure, Gateway, transfer_progress, usage_error

CHUNK = 1024 * 1024
STDIN = "-"
PRODUCER_STOP_SECONDS = 10.0
OCTET_STREAM = "application/octet-stream"

Progress = Callable[[int], None]


class BackupSource(Protocol):
    """What ``ssbg backup`` uploads."""

    @property
    def name(self) -> str | None:
        """The filename stored by default (``None``: the caller must give one)."""

    @property
    def size(self) -> int | None:
        """The payload's length when known in advance; ``None`` for a stream."""

    @property
    def content_type(self) -> str: ...

    @property
    def replayable(self) -> bool:
        """Whether :meth:`chunks` may be called again to send the payload a second time."""

    def chunks(self, on_chunk: Progress) -> Iterator[bytes]:
        """The payload in chunks of at most :data:`CHUNK` bytes, reporting each one's size."""

    def close(self) -> None:
        """Release what the source holds (a producer still running is stopped)."""


class ProducerFailed(ClientFailure):
    """The producer command failed, so the upload was cut off before its end."""

    def __init__(self, command: str, status: int, sent: int) -> None:
        super().__init__(
            "PRODUCER_FAILED",
            f"PRODUCER_FAILED: {command} {describe_status(status)} after {sent} bytes; the "
            "upload was cut off, so the gateway does not keep this backup (it is recorded "
            "FAILED).",
            details={"command": command, "exit_status": status, "bytes_sent": sent},
        )
        self.status = status


def describe_status(status: int) -> str:
    """``exited with status 3`` or ``was killed by SIGKILL`` (a negative ``Popen`` status)."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"


def read_chunks(stream: IO[bytes], on_chunk: Progress, size: int = CHUNK) -> Iterator[bytes]:
    """``stream`` in chunks of ``size`` bytes (the last may be shorter) until end-of-file."""
    while chunk := stream.read(size):
        on_chunk(len(chunk))
        yield chunk


class FileSource:
    """A regular, non-empty file: sized, typed by its name, readable as often as needed."""

    replayable = True

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise usage_error(f"{path} is not a readable file.")
        self.size: int | None = path.stat().st_size
        if self.size == 0:
            raise usage_error(f"{path} is empty; there is nothing to back up.")
        self.path = path
        self.name: str | None = path.name
        self.content_type = mimetypes.guess_type(path.name)[0] or OCTET_STREAM

    def chunks(self, on_chunk: Progress) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            yield from read_chunks(handle, on_chunk)

    def close(self) -> None:
        return None


class StreamSource:
    """A binary stream of unknown length (standard input), read once.

    The first chunk is read at construction: an empty stream is a usage error before any
    request is made.
    """

    replayable = False
    content_type = OCTET_STREAM
    size: int | None = None
    name: str | None = None

    def __init__(self, stream: IO[bytes], *, what: str = "Standard input") -> None:
        self._stream = stream
        self._first = stream.read(CHUNK)
        self._started = False
        self.sent = 0
        if not self._first:
            self._on_empty(what)

    def _on_empty(self, what: str) -> None:
        raise usage_error(f"{what} is empty; there is nothing to back up.")

    def chunks(self, on_chunk: Progress) -> Iterator[bytes]:
        if self._started:
            raise ClientFailure(
                "STREAM_CONSUMED", "A backup from a stream cannot be sent a second time."
            )
        self._started = True
        return self._chunks(on_chunk)

    def _chunks(self, on_chunk: Progress) -> Iterator[bytes]:
        def counted(n: int) -> None:
            self.sent += n
            on_chunk(n)

        counted(len(self._first))
        first, self._first = self._first, b""
        yield first
        yield from read_chunks(self._stream, counted)

    def close(self) -> None:
        return None


class ProducerSource(StreamSource):
    """The standard output of ``command``, a child process that inherits standard input and
    standard error; its exit status decides whether the body is allowed to end."""

    def __init__(self, command: list[str]) -> None:
        self.command = command[0]
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE)  # noqa: S603
        except OSError as error:
            raise usage_error(f"Cannot start {self.command}: {error.strerror or error}.") from None
        assert self.process.stdout is not None
        try:
            super().__init__(self.process.stdout, what=f"The output of {self.command}")
        except BaseException:
            self.close()
            raise

    def _on_empty(self, what: str) -> None:
        status = self.process.wait()
        if status != 0:
            raise ProducerFailed(self.command, status, 0)
        super()._on_empty(what)

    def _chunks(self, on_chunk: Progress) -> Iterator[bytes]:
        yield from super()._chunks(on_chunk)
        # End-of-file: the body must not end before the producer says it succeeded.
        status = self.process.wait()
        if status != 0:
            raise ProducerFailed(self.command, status, self.sent)

    def close(self) -> None:
        """Stop a producer that is still running (the upload failed or was interrupted)."""
        process = self.process
        if process.stdout is not None:
            process.stdout.close()  # a producer still writing gets SIGPIPE
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=PRODUCER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def open_source(file: Path, command: list[str], stdin: IO[bytes] | None) -> BackupSource:
    """The source named on the command line: ``FILE``, ``-`` (``stdin``; ``None`` when the
    process has none) or ``- -- COMMAND``."""
    if str(file) != STDIN:
        if command:
            raise usage_error("A COMMAND after -- needs FILE to be - (its output is the backup).")
        return FileSource(file)
    if command:
        return ProducerSource(command)
    if stdin is None:
        raise usage_error("There is no standard input to back up.")
    if stdin.isatty():
        raise usage_error("Standard input is a terminal; pipe the data to back up into ssbg.")
    return StreamSource(stdin)


def upload(
    gateway: Gateway,
    source: BackupSource,
    *,
    params: dict[str, Any],
    idempotency_key: str | None,
    show_progress: bool,
) -> httpx.Response:
    """``POST /backups`` with ``source`` as the raw body: ``Content-Length`` when its size is
    known, chunked transfer encoding otherwise; a progress bar (or, for a stream, bytes and
    speed) on stderr."""
    with transfer_progress(enabled=show_progress, total=source.size) as progress:
        task = progress.add_task("upload", total=source.size)

        def body() -> Iterator[bytes]:
            progress.reset(task)
            return source.chunks(lambda n: progress.update(task, advance=n))

        length = {} if source.size is None else {"Content-Length": str(source.size)}
        return gateway.call(
            "POST",
            "/backups",
            params=params,
            content=body,
            replayable=source.replayable,
            headers={
                "Content-Type": source.content_type,
                **length,
                **({"Idempotency-Key": idempotency_key} if idempotency_key else {}),
            },
        )
