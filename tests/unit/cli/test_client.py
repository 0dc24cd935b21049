"""The client's own logic against scripted HTTP answers (httpx.MockTransport): a download
lands only complete and verified; refusals and MFA prompts are handled as documented."""

import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ssbg.cli import client
from ssbg.cli.client import ClientFailure, Gateway, download_verified
from ssbg.infrastructure.hashing_file_writer import BLOCK_SIZE

BODY = b"restored plaintext " * 1000
GOOD_SHA = hashlib.sha512(BODY).hexdigest()


class BreaksOff(httpx.SyncByteStream):
    """Sends some bytes, then the connection drops (as when the gateway aborts)."""

    def __iter__(self) -> Iterator[bytes]:
        yield BODY[:100]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def gateway(handler: Callable[[httpx.Request], httpx.Response]) -> Gateway:
    return Gateway(
        "http://gateway.test/api/v1",
        "ssbg_" + "a" * 32,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def answer(body: bytes = BODY, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    defaults = {"X-Content-SHA512": GOOD_SHA, "Content-Length": str(len(BODY))}
    merged = {**defaults, **{k.replace("_", "-"): v for k, v in headers.items()}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=merged, content=body)

    return handler


def fetch(handler: Callable[[httpx.Request], httpx.Response], output: Path) -> client.Downloaded:
    return download_verified(
        gateway(handler), "/restores/r/download", {}, output, force=False, show_progress=False
    )


def test_a_verified_download_lands_private_and_replaces_a_stale_partial(tmp_path: Path) -> None:
    stale = tmp_path / ".out.bin.partial"
    stale.write_bytes(b"left by a crash")
    stale.chmod(0o644)

    result = fetch(answer(), tmp_path / "out.bin")

    assert (result.bytes, result.sha512) == (len(BODY), GOOD_SHA)
    assert (tmp_path / "out.bin").read_bytes() == BODY
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


class Pieces(httpx.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces


def test_a_body_arriving_in_uneven_pieces_is_written_and_hashed_in_order(
    tmp_path: Path,
) -> None:
    """Pieces are gathered into the writer's blocks, each hashed and written on a thread:
    the file and its SHA-512 still come out exactly as sent, whatever the piece sizes."""
    body = bytes(range(256)) * (3 * BLOCK_SIZE // 256) + b"tail"
    sizes = [1, BLOCK_SIZE - 1, 7, BLOCK_SIZE + 5, 65_536, 3]
    pieces, offset, turn = [], 0, 0
    while offset < len(body):
        size = sizes[turn % len(sizes)]
        pieces.append(body[offset : offset + size])
        offset, turn = offset + size, turn + 1
    digest = hashlib.sha512(body).hexdigest()

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"X-Content-SHA512": digest, "Content-Length": str(len(body))}
        return httpx.Response(200, headers=headers, stream=Pieces(pieces))

    result = fetch(handler, tmp_path / "out.bin")

    assert (result.bytes, result.sha512) == (len(body), digest)
    assert (tmp_path / "out.bin").read_bytes() == body


@pytest.mark.parametrize(
    ("handler", "code"),
    [
        (answer(X_Content_SHA512="0" * 128), "INTEGRITY_FAILURE"),
        (answer(X_Content_SHA512=""), "INTEGRITY_FAILURE"),
        (
            answer(body=BODY[:-1], X_Content_SHA512=hashlib.sha512(BODY[:-1]).hexdigest()),
            "DOWNLOAD_INCOMPLETE",
        ),
        (
            lambda request: httpx.Response(
                200, headers={"X-Content-SHA512": GOOD_SHA}, stream=BreaksOff()
            ),
            "DOWNLOAD_INCOMPLETE",
        ),
    ],
    ids=["altered", "unannounced", "short", "broken-off"],
)
def test_a_bad_download_leaves_nothing(
    handler: Callable[[httpx.Request], httpx.Response], code: str, tmp_path: Path
) -> None:
    with pytest.raises(ClientFailure) as failure:
        fetch(handler, tmp_path / "out.bin")

    assert failure.value.code == code
    assert failure.value.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_fails_the_download_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", disk_full)

    with pytest.raises(ClientFailure) as failure:
        fetch(answer(), tmp_path / "out.bin")

    assert (failure.value.code, failure.value.exit_code) == ("WRITE_FAILED", 1)
    assert "No space left on device" in failure.value.message
    assert list(tmp_path.iterdir()) == []


def test_refusals_carry_the_gateway_code_details_and_retry_after() -> None:
    limited = httpx.Response(
        429,
        headers={"Retry-After": "120"},
        json={"error": {"code": "RATE_LIMITED", "message": "Too many.", "details": {"rule": "P5"}}},
    )
    proxy = httpx.Response(502, text="<html>Bad gateway</html>")

    rate = client.refusal(limited)
    other = client.refusal(proxy)

    assert (rate.code, rate.details, rate.exit_code) == ("RATE_LIMITED", {"rule": "P5"}, 1)
    assert "Retry after 120 s" in rate.message
    assert (other.code, other.message) == ("HTTP_ERROR", "The gateway answered 502.")


def test_mfa_is_asked_for_once_and_the_request_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("X-MFA-Token"))
        if request.headers.get("X-MFA-Token") != "123456":
            error = {"code": "AUTH_MFA_REQUIRED", "message": "MFA required."}
            return httpx.Response(401, json={"error": error})
        return httpx.Response(201, json={"data": {"ok": True}})

    monkeypatch.setattr(client, "prompt_mfa_code", lambda: "123456")
    wrong = gateway(handler)
    wrong.mfa_token = "000000"

    assert gateway(handler).data("POST", "/restores", body={})["data"] == {"ok": True}
    assert sent == [None, "123456"]
    with pytest.raises(ClientFailure) as failure:  # a code given up front is not re-asked
        wrong.data("POST", "/restores", body={})
    assert failure.value.code == "AUTH_MFA_REQUIRED"


def test_an_unreachable_gateway_is_a_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ClientFailure) as failure:
        gateway(handler).data("GET", "/backups")

    assert (failure.value.code, failure.value.exit_code) == ("CONNECTION", 2)
