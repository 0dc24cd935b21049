"""What ``ssbg backup`` reads (a file, standard input, a producer command) and how each is
sent: sized or chunked, read once or replayable; a producer's failure raises before the body
ends. Requests go to scripted HTTP answers (httpx.MockTransport); producers are real child
processes."""

import io
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ssbg.cli.backup_sources import (
    CHUNK,
    BackupSource,
    FileSource,
    ProducerFailed,
    ProducerSource,
    StreamSource,
    describe_status,
    open_source,
    upload,
)
from ssbg.cli.client import ClientFailure, Gateway

PAYLOAD = os.urandom(2 * CHUNK + CHUNK // 2)


class CountingStream(io.BytesIO):
    """A stream that remembers how much was asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.largest_read = max(self.largest_read, size if size is not None else -1)
        return super().read(size)


def drain(source: BackupSource) -> tuple[list[bytes], int]:
    """The chunks of ``source`` and the bytes its progress callback was told about."""
    reported: list[int] = []
    chunks = list(source.chunks(reported.append))
    return chunks, sum(reported)


def usage_code(action: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ClientFailure) as caught:
        action()
    return caught.value.exit_code, caught.value.message


def test_a_file_is_sized_typed_and_replayable(tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_bytes(PAYLOAD)

    source = FileSource(path)
    first, reported = drain(source)
    again, _ = drain(source)

    assert (source.name, source.size, source.replayable) == ("dump.txt", len(PAYLOAD), True)
    assert source.content_type == "text/plain"
    assert [len(c) for c in first] == [CHUNK, CHUNK, CHUNK // 2]
    assert b"".join(first) == b"".join(again) == PAYLOAD
    assert reported == len(PAYLOAD)


def test_a_missing_or_empty_file_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.touch()

    assert usage_code(lambda: FileSource(tmp_path / "missing"))[0] == 2
    assert usage_code(lambda: FileSource(tmp_path))[0] == 2
    code, message = usage_code(lambda: FileSource(empty))
    assert (code, "empty" in message) == (2, True)


def test_a_stream_has_no_size_reads_fixed_chunks_and_only_one_before_the_request() -> None:
    stream = CountingStream(PAYLOAD)

    source = StreamSource(stream)
    read_before_sending = stream.tell()
    chunks, reported = drain(source)

    assert (source.size, source.name, source.replayable) == (None, None, False)
    assert source.content_type == "application/octet-stream"
    assert read_before_sending == CHUNK
    assert stream.largest_read == CHUNK  # never read whole
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK // 2]
    assert b"".join(chunks) == PAYLOAD
    assert reported == source.sent == len(PAYLOAD)


def test_a_stream_is_sent_once() -> None:
    source = StreamSource(io.BytesIO(b"once"))
    drain(source)

    with pytest.raises(ClientFailure) as caught:
        source.chunks(lambda _n: None)

    assert caught.value.code == "STREAM_CONSUMED"


def test_an_empty_stream_is_a_usage_error_before_any_request() -> None:
    code, message = usage_code(lambda: StreamSource(io.BytesIO(b"")))

    assert code == 2
    assert message == "Standard input is empty; there is nothing to back up."


def test_a_terminal_on_standard_input_is_refused() -> None:
    controller, terminal = os.openpty()
    try:
        with os.fdopen(terminal, "rb", buffering=0, closefd=False) as stdin:
            code, message = usage_code(lambda: open_source(Path("-"), [], stdin))
    finally:
        os.close(controller)
        os.close(terminal)

    assert code == 2
    assert "terminal" in message


def test_open_source_picks_file_stdin_or_producer(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"file")

    assert isinstance(open_source(path, [], io.BytesIO()), FileSource)
    assert isinstance(open_source(Path("-"), [], io.BytesIO(b"in")), StreamSource)
    producer = open_source(Path("-"), ["printf", "out"], io.BytesIO())
    assert isinstance(producer, ProducerSource)
    producer.close()
    assert usage_code(lambda: open_source(path, ["printf", "x"], io.BytesIO()))[0] == 2
    assert isinstance(open_source(path, [], None), FileSource)  # no stdin: files still work
    assert usage_code(lambda: open_source(Path("-"), [], None))[0] == 2


def test_a_producer_that_succeeds_is_its_output() -> None:
    source = ProducerSource(["sh", "-c", "head -c 2621440 /dev/zero"])

    chunks, reported = drain(source)
    source.close()

    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK // 2]
    assert reported == 2 * CHUNK + CHUNK // 2


@pytest.mark.parametrize(
    ("script", "description"),
    [
        ("printf abc; exit 4", "exited with status 4"),
        ("printf abc; kill -KILL $$", "was killed by SIGKILL"),
    ],
)
def test_a_failing_producer_raises_before_the_body_ends(script: str, description: str) -> None:
    source = ProducerSource(["sh", "-c", script])
    chunks = source.chunks(lambda _n: None)

    assert next(chunks) == b"abc"
    with pytest.raises(ProducerFailed) as caught:
        next(chunks)  # end-of-file: the body does not end, the producer's status is raised
    source.close()

    assert caught.value.exit_code == 1
    assert description in caught.value.message
    assert caught.value.details == {
        "command": "sh",
        "exit_status": caught.value.status,
        "bytes_sent": 3,
    }


def test_a_producer_that_fails_without_output_is_reported_as_failed_not_empty() -> None:
    with pytest.raises(ProducerFailed) as caught:
        ProducerSource(["sh", "-c", "exit 5"])

    assert caught.value.status == 5
    assert caught.value.exit_code == 1


def test_a_producer_with_no_output_or_that_cannot_start_is_a_usage_error() -> None:
    code, message = usage_code(lambda: ProducerSource(["true"]))
    assert (code, message) == (2, "The output of true is empty; there is nothing to back up.")
    code, message = usage_code(lambda: ProducerSource(["/nonexistent/pg_dump"]))
    assert code == 2
    assert message.startswith("Cannot start /nonexistent/pg_dump")


def test_closing_stops_a_producer_that_is_still_running() -> None:
    source = ProducerSource(["yes"])  # writes forever
    next(source.chunks(lambda _n: None))

    source.close()

    assert source.process.returncode is not None


def test_describe_status() -> None:
    assert describe_status(0) == "exited with status 0"
    assert describe_status(2) == "exited with status 2"
    assert describe_status(-15) == "was killed by SIGTERM"
    assert describe_status(-200) == "was killed by signal 200"


# -- how a source is sent -------------------------------------------------------------------


def recording(requests: list[httpx.Request], status: int = 201, body: object = None) -> Gateway:
    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        requests.append(request)
        return httpx.Response(status, json=body or {"data": {"backup_id": "b"}})

    return Gateway(
        "http://gateway.test/api/v1",
        "ssbg_" + "a" * 32,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def send(gateway: Gateway, source: BackupSource) -> httpx.Response:
    return upload(
        gateway,
        source,
        params={"filename": "db.sql", "classification": "INTERNAL"},
        idempotency_key="nightly-1",
        show_progress=False,
    )


def test_a_stream_is_sent_with_chunked_transfer_encoding() -> None:
    requests: list[httpx.Request] = []

    send(recording(requests), StreamSource(io.BytesIO(PAYLOAD)))

    [request] = requests
    assert request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in request.headers
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["Idempotency-Key"] == "nightly-1"
    assert request.url.params["filename"] == "db.sql"
    assert request.content == PAYLOAD


def test_a_file_is_sent_with_its_length(tmp_path: Path) -> None:
    path = tmp_path / "dump.bin"
    path.write_bytes(PAYLOAD)
    requests: list[httpx.Request] = []

    send(recording(requests), FileSource(path))

    [request] = requests
    assert request.headers["Content-Length"] == str(len(PAYLOAD))
    assert "Transfer-Encoding" not in request.headers
    assert request.content == PAYLOAD


def test_a_stream_needing_mfa_fails_once_with_advice_instead_of_a_prompt() -> None:
    requests: list[httpx.Request] = []
    challenge = {"error": {"code": "AUTH_MFA_REQUIRED", "message": "A TOTP code is needed."}}

    with pytest.raises(ClientFailure) as caught:
        send(recording(requests, 401, challenge), StreamSource(io.BytesIO(b"secret")))

    assert len(requests) == 1
    assert caught.value.code == "AUTH_MFA_REQUIRED"
    assert "Set SSBG_MFA_TOKEN" in caught.value.message
