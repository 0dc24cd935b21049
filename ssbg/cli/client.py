"""The client half of the CLI: talk to a running gateway at ``SSBG_URL`` with ``SSBG_API_KEY``.

One place for what every client command shares: reading the environment, the MFA code
(``SSBG_MFA_TOKEN`` or a prompt on the terminal, asked only when the gateway says it is
needed), turning the gateway's error envelope into a :class:`ClientFailure`, progress bars
on stderr, and downloads that land at their destination only once complete and verified.

Exit codes of every client command: 0 done, 1 the gateway refused or the transfer failed
(nothing is left at the destination), 2 usage or connection error, 3 waiting for approval.
"""

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ssbg.cli.settings_loader import EXIT_USAGE, err
from ssbg.infrastructure.durable_files import fsync_directory
from ssbg.infrastructure.hashing_file_writer import HashingFileWriter

EXIT_REFUSED = 1
EXIT_PENDING = 3
DEFAULT_URL = "http://127.0.0.1:8000"
# The API's version prefix (SPEC §3): the client is a program of its own that knows the
# contract, not the server's modules.
API_PREFIX = "/api/v1"
MFA_HEADER = "X-MFA-Token"
TIMEOUT = httpx.Timeout(30.0, read=600.0)

out = Console()


class ClientFailure(Exception):
    """What a client command reports before it exits: a code, a sentence, the exit code."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        exit_code: int = EXIT_REFUSED,
        details: object = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def usage_error(message: str) -> ClientFailure:
    return ClientFailure("USAGE", message, exit_code=EXIT_USAGE)


def fail(failure: ClientFailure, *, as_json: bool) -> NoReturn:
    """Print ``failure`` (one JSON object with ``--json``) and exit with its code."""
    if as_json:
        print(json.dumps(failure.as_dict()))
    else:
        err.print(f"[red]{failure.message}[/]", soft_wrap=True)
        if failure.details:
            err.print(f"  details: {json.dumps(failure.details)}", soft_wrap=True)
    raise typer.Exit(failure.exit_code)


def refusal(response: httpx.Response) -> ClientFailure:
    """The gateway's error envelope (SPEC §4) as a failure; anything else by status code."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return ClientFailure("HTTP_ERROR", f"The gateway answered {response.status_code}.")
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        message = f"{message} Retry after {retry_after} s."
    return ClientFailure(code, f"{code}: {message}", details=error.get("details"))


def transfer_progress(*, enabled: bool, total: int | None) -> Progress:
    """A progress bar on stderr (stdout stays clean for ``--json``)."""
    columns = (
        [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        if total is not None
        else [SpinnerColumn(), DownloadColumn(), TransferSpeedColumn()]
    )
    return Progress(*columns, console=err, transient=True, disable=not enabled)


@dataclass
class Gateway:
    """A gateway address and the credentials of the person at the keyboard."""

    base_url: str
    api_key: str
    mfa_token: str | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=TIMEOUT))
    # Who may run the command ("a super_admin"): named in a FORBIDDEN_ROLE refusal.
    role_hint: str = ""

    @classmethod
    def from_env(cls, role_hint: str) -> "Gateway":
        api_key = os.environ.get("SSBG_API_KEY")
        if not api_key:
            raise usage_error(f"Set SSBG_API_KEY to {role_hint} API key.")
        base_url = os.environ.get("SSBG_URL", DEFAULT_URL).rstrip("/") + API_PREFIX
        return cls(base_url, api_key, os.environ.get("SSBG_MFA_TOKEN") or None, role_hint=role_hint)

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self, *, mfa: bool = False) -> dict[str, str]:
        headers = {"X-API-Key": self.api_key}
        if mfa and self.mfa_token:
            headers[MFA_HEADER] = self.mfa_token
        return headers

    @contextmanager
    def connection_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ClientFailure(
                "CONNECTION",
                f"The gateway at {self.base_url} did not answer in time ({type(exc).__name__}).",
                exit_code=EXIT_USAGE,
            ) from None
        except httpx.TransportError as exc:
            raise ClientFailure(
                "CONNECTION",
                f"Cannot reach the gateway at {self.base_url} ({type(exc).__name__}).",
                exit_code=EXIT_USAGE,
            ) from None

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: object = None,
        content: Callable[[], Iterable[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        replayable: bool = True,
    ) -> httpx.Response:
        """One request; asks for a TOTP code and repeats it once if the gateway needs MFA.

        ``content`` is a factory so that a streamed body can be sent a second time; a body
        that cannot (``replayable=False``: standard input, which is also no place to ask for
        a code) is not repeated — the failure says to set ``SSBG_MFA_TOKEN`` instead.
        Returns any 2xx response; raises :class:`ClientFailure` for everything else.
        """
        asked = False
        while True:
            with self.connection_errors():
                response = self.http.request(
                    method,
                    self.url(path),
                    params={k: v for k, v in (params or {}).items() if v is not None},
                    json=body,
                    content=content() if content is not None else None,
                    headers={**self.headers(mfa=True), **(headers or {})},
                )
            if response.is_success:
                return response
            failure = refusal(response)
            if failure.code == "AUTH_MFA_REQUIRED" and self.mfa_token is None and not asked:
                if not replayable:
                    raise ClientFailure(
                        failure.code,
                        f"{failure.message} Set SSBG_MFA_TOKEN: a backup from a stream is "
                        "sent once and cannot wait for a code to be typed.",
                        details=failure.details,
                    )
                self.mfa_token = prompt_mfa_code()
                asked = True
                continue
            if failure.code == "FORBIDDEN_ROLE" and self.role_hint:
                failure.message += f" This command needs {self.role_hint} key."
            raise failure

    def data(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = self.call(method, path, **kwargs).json()
        return payload


def prompt_mfa_code() -> str:
    """Ask for the current TOTP code (on stderr, so ``--json`` output stays one object)."""
    try:
        code: str = typer.prompt("TOTP code from your authenticator", err=True)
    except typer.Abort:
        raise ClientFailure(
            "AUTH_MFA_REQUIRED",
            "AUTH_MFA_REQUIRED: this request needs a TOTP code; set SSBG_MFA_TOKEN or run "
            "the command on a terminal to be asked for one.",
        ) from None
    return code.strip()


@dataclass(frozen=True)
class Downloaded:
    output: Path
    bytes: int
    sha512: str


def check_destination(output: Path, *, force: bool) -> None:
    """Refuse before any request: an existing file (without ``--force``), a missing folder."""
    if output.is_dir():
        raise usage_error(f"{output} is a directory; name the file to write.")
    if output.exists() and not force:
        raise usage_error(f"{output} exists; pass --force to replace it.")
    if not output.parent.is_dir():
        raise usage_error(f"The folder {output.parent} does not exist.")


def download_verified(
    gateway: Gateway,
    path: str,
    headers: dict[str, str],
    output: Path,
    *,
    force: bool,
    show_progress: bool,
) -> Downloaded:
    """Stream ``path`` into a private partial file next to ``output``; check the length and
    the SHA-512 the gateway announced; only then fsync and rename it into place.

    On any failure — refusal, broken connection, short or altered content — the partial file
    is removed and nothing is left at ``output``.
    """
    partial = output.with_name(f".{output.name}.partial")
    try:
        received = _receive(gateway, path, headers, partial, show_progress=show_progress)
        if output.exists() and not force:
            raise usage_error(f"{output} appeared meanwhile; pass --force to replace it.")
        os.replace(partial, output)
        fsync_directory(output.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Downloaded(output, *received)


def _receive(
    gateway: Gateway, path: str, headers: dict[str, str], target: Path, *, show_progress: bool
) -> tuple[int, str]:
    with (
        HashingFileWriter(target) as writer,
        gateway.connection_errors(),
        gateway.http.stream(
            "GET", gateway.url(path), headers={**gateway.headers(), **headers}
        ) as response,
    ):
        if not response.is_success:
            response.read()
            raise refusal(response)
        announced = response.headers.get("X-Content-SHA512", "").lower()
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isascii() and length.isdigit() else None
        with transfer_progress(enabled=show_progress, total=expected) as progress:
            task = progress.add_task("download", total=expected)
            try:
                for piece in response.iter_bytes():
                    progress.update(task, advance=writer.write(piece))
                stored, checksum = writer.finish()
            except httpx.TransportError:
                raise ClientFailure(
                    "DOWNLOAD_INCOMPLETE",
                    f"The gateway broke off the download after {writer.received} bytes (a "
                    "segment may have failed to authenticate); nothing was saved.",
                ) from None
            except OSError as error:
                raise ClientFailure(
                    "WRITE_FAILED",
                    f"Writing {target.name} failed after {writer.received} bytes "
                    f"({error.strerror or error}); nothing was saved.",
                ) from None
            progress.update(task, advance=stored)
    written = writer.received
    if expected is not None and written != expected:
        raise ClientFailure(
            "DOWNLOAD_INCOMPLETE",
            f"Received {written} of {expected} bytes; nothing was saved.",
        )
    if not announced:
        raise ClientFailure(
            "INTEGRITY_FAILURE", "The gateway sent no X-Content-SHA512; nothing was saved."
        )
    if checksum != announced:
        raise ClientFailure(
            "INTEGRITY_FAILURE",
            "INTEGRITY_FAILURE: the downloaded bytes do not match the SHA-512 the gateway "
            "announced; nothing was saved.",
        )
    return written, checksum
