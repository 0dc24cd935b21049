"""An HTTP proxy in front of the S3 server that fails chosen multipart steps on demand.

Every request is forwarded to the upstream server (moto) and its answer streamed back, until
the test arms a rule: "fail the CreateMultipartUpload", "fail UploadPart number 2", "fail the
PutObject of a key ending ``dek.wrapped``". A request the rule matches then fails

* with an S3 error answer (``500 InternalError``, ``503 ServiceUnavailable``) — the server
  never saw the request;
* by a dropped connection, no answer at all — the server never saw the request;
* or by a lost answer: the server did the step, then the connection drops before its answer.

A rule fails its step every time until it is disarmed (or only its next ``times`` requests),
so the SDK's own retries meet the same fault; it counts its hits, so a test can assert the step
was really reached. The proxy also keeps a log of every step it saw, and of every answer it had
from the server, in order.

A test can also *hold* a step (:meth:`S3FaultProxy.hold`): its requests wait at the proxy,
before being forwarded, until the hold is released. The proxy counts the requests of each step
in flight — from arrival until the server's answer reaches the proxy, so before the client can
have it — and the highest such count (``peak``); :meth:`S3FaultProxy.wait_until` waits for a
condition on that state without sleeping.

Steps are recognised as S3 names them (path-style addressing, ``/bucket/key``):

=========================  ======  =================================
step                       method  query
=========================  ======  =================================
CreateMultipartUpload      POST    ``?uploads``
UploadPart                 PUT     ``?partNumber=N&uploadId=…``
CompleteMultipartUpload    POST    ``?uploadId=…``
AbortMultipartUpload       DELETE  ``?uploadId=…``
PutObject                  PUT     neither (and no ``x-amz-copy-source``)
=========================  ======  =================================
"""

import asyncio
import enum
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx
import pytest
from aiohttp import web
from botocore.retries.standard import ExponentialBackoff

_CHUNK = 64 * 1024
# Hop-by-hop headers (RFC 9110 §7.6.1) and what the forwarding client sets itself.
_NOT_FORWARDED = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}


def skip_retry_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK retries a failed step twice after a random backoff (up to 1 s, then 2 s). The
    retries still happen and meet the same fault (the rules count them); only the waiting
    between them is skipped, so a failing step costs a fraction of a second instead of up to
    3 s."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


class Step(enum.StrEnum):
    CREATE = "CreateMultipartUpload"
    PART = "UploadPart"
    COMPLETE = "CompleteMultipartUpload"
    ABORT = "AbortMultipartUpload"
    PUT = "PutObject"
    OTHER = "Other"


class Failure(enum.Enum):
    ERROR_500 = "500 InternalError"
    ERROR_503 = "503 ServiceUnavailable"
    DROP = "connection dropped, no answer"
    ANSWER_LOST = "forwarded, then the connection dropped before the answer"


_ERRORS = {
    Failure.ERROR_500: (500, "InternalError", "We encountered an internal error."),
    Failure.ERROR_503: (503, "ServiceUnavailable", "Please reduce your request rate."),
}


@dataclass(frozen=True)
class Seen:
    """One request the proxy saw: its step, object key, part number, and whether it failed."""

    step: Step
    key: str
    part_number: int | None
    failed: bool


@dataclass
class FaultRule:
    step: Step
    failure: Failure
    part_number: int | None = None
    key_suffix: str | None = None
    times: int | None = None  # None: every time, until disarmed
    hits: int = 0
    armed: bool = field(default=True)

    def matches(self, step: Step, key: str, part_number: int | None) -> bool:
        if not self.armed or step is not self.step:
            return False
        if self.part_number is not None and part_number != self.part_number:
            return False
        if self.key_suffix is not None and not key.endswith(self.key_suffix):
            return False
        return self.times is None or self.hits < self.times


@dataclass
class Hold:
    """Requests of ``step`` (only part ``part_number``) wait at the proxy until released."""

    step: Step
    part_number: int | None = None
    waiting: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, step: Step, part_number: int | None) -> bool:
        if self.released.is_set() or step is not self.step:
            return False
        return self.part_number is None or part_number == self.part_number

    def release(self) -> None:
        self.released.set()


def classify(method: str, key: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Step:
    """The S3 operation of a request (``headers`` as the server's case-insensitive view)."""
    if not key:  # a request about the bucket itself (CreateBucket, ListObjectsV2, ...)
        return Step.OTHER
    if method == "POST" and "uploads" in query:
        return Step.CREATE
    if method == "PUT" and "uploadId" in query and "partNumber" in query:
        return Step.PART
    if method == "POST" and "uploadId" in query:
        return Step.COMPLETE
    if method == "DELETE" and "uploadId" in query:
        return Step.ABORT
    if method == "PUT" and not query and "x-amz-copy-source" not in headers:
        return Step.PUT
    return Step.OTHER


def _object_key(path: str) -> str:
    """``/bucket/some/key`` → ``some/key`` (path-style addressing)."""
    _, _, key = unquote(path).lstrip("/").partition("/")
    return key


def _error_body(code: str, message: str, key: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Key>{key}</Key>"
        f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>"
    ).encode()


class S3FaultProxy:
    """Forwards to ``upstream_url``; fails the steps of the rules armed with :meth:`arm`."""

    def __init__(self, upstream_url: str) -> None:
        self._upstream_url = upstream_url.rstrip("/")
        self._rules: list[FaultRule] = []
        self._holds: list[Hold] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: httpx.AsyncClient | None = None
        self.seen: list[Seen] = []
        self.answered: list[Seen] = []  # requests the server answered, in the order it did
        self.in_flight: Counter[Step] = Counter()
        self.peak: Counter[Step] = Counter()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "S3FaultProxy":
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening.bind(("127.0.0.1", 0))
        self.port = int(listening.getsockname()[1])
        await web.SockSite(self._runner, listening).start()
        return self

    async def stop(self) -> None:
        self.release_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- rules -----------------------------------------------------------------------------

    def arm(
        self,
        step: Step,
        failure: Failure,
        *,
        part_number: int | None = None,
        key_suffix: str | None = None,
        times: int | None = None,
    ) -> FaultRule:
        """Fail every request of ``step`` (only part ``part_number``, only keys ending
        ``key_suffix``) with ``failure`` — each time until disarmed, or its next ``times``."""
        rule = FaultRule(step, failure, part_number, key_suffix, times)
        self._rules.append(rule)
        return rule

    def disarm(self, rule: FaultRule | None = None) -> None:
        """Disarm ``rule``, or every rule."""
        for armed in [rule] if rule is not None else self._rules:
            armed.armed = False

    def hold(self, step: Step, *, part_number: int | None = None) -> Hold:
        """Hold every request of ``step`` (only part ``part_number``) until released."""
        held = Hold(step, part_number)
        self._holds.append(held)
        return held

    def release_all(self) -> None:
        for held in self._holds:
            held.release()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; it is checked again whenever a request arrives,
        is held, or is answered. Bound the wait with ``asyncio.timeout``."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()

    def steps(self, step: Step) -> list[Seen]:
        return [seen for seen in self.seen if seen.step is step]

    def _match(self, step: Step, key: str, part_number: int | None) -> FaultRule | None:
        for rule in self._rules:
            if rule.matches(step, key, part_number):
                rule.hits += 1
                return rule
        return None

    # -- serving ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.rel_url.query)
        key = _object_key(request.path)
        step = classify(request.method, key, query, request.headers)
        part = query.get("partNumber")
        part_number = int(part) if part is not None and part.isdigit() else None
        self.in_flight[step] += 1
        self.peak[step] = max(self.peak[step], self.in_flight[step])
        in_flight = True

        def answered(seen: Seen) -> None:
            nonlocal in_flight
            if in_flight:
                in_flight = False
                self.in_flight[step] -= 1
                self.answered.append(seen)
                self._notify()

        self._notify()
        try:
            for held in [h for h in self._holds if h.matches(step, part_number)]:
                held.waiting += 1
                self._notify()
                try:
                    await held.released.wait()
                finally:
                    held.waiting -= 1
            if request.transport is None or request.transport.is_closing():
                return self._drop(request)  # the client gave up while held
            return await self._serve(request, step, key, part_number, answered)
        except ConnectionError:  # the client gave up mid-request (a cancelled part upload)
            return self._drop(request)
        finally:
            if in_flight:  # never answered by the server
                in_flight = False
                self.in_flight[step] -= 1
                self._notify()

    async def _serve(
        self,
        request: web.Request,
        step: Step,
        key: str,
        part_number: int | None,
        answered: Callable[[Seen], None],
    ) -> web.StreamResponse:
        rule = self._match(step, key, part_number)
        seen = Seen(step, key, part_number, failed=rule is not None)
        self.seen.append(seen)
        if rule is None:
            answer = await self._send_upstream(request)
            answered(seen)
            try:
                return await self._relay(request, answer)
            finally:
                await answer.aclose()
        if rule.failure is Failure.ANSWER_LOST:
            answer = await self._send_upstream(request)
            answered(seen)
            await answer.aread()  # the server did the step; its answer never reaches the client
            await answer.aclose()
            return self._drop(request)
        while await request.content.read(_CHUNK):  # the client sent it all; then the failure
            pass
        if rule.failure is Failure.DROP:
            return self._drop(request)
        status, code, message = _ERRORS[rule.failure]
        return web.Response(
            status=status, body=_error_body(code, message, key), content_type="application/xml"
        )

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        """Close the connection without answering: no status line, no body."""
        if request.transport is not None:
            request.transport.abort()
        # aiohttp writes nothing to an aborted transport, but wants a response returned.
        return web.Response(status=500)

    async def _send_upstream(self, request: web.Request) -> httpx.Response:
        assert self._http is not None
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _NOT_FORWARDED
        ]
        body = request.content.iter_chunked(_CHUNK) if request.body_exists else None
        upstream = self._http.build_request(
            request.method, f"{self._upstream_url}{request.rel_url}", headers=headers, content=body
        )
        return await self._http.send(upstream, stream=True)

    @staticmethod
    async def _relay(request: web.Request, answer: httpx.Response) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status_code, reason=answer.reason_phrase)
        for name, value in answer.headers.multi_items():
            if name.lower() not in _NOT_FORWARDED:
                response.headers.add(name, value)
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in answer.aiter_raw(_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
