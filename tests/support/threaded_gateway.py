"""A gateway served from a thread of its own (its own event loop), for tests that must block
the test's thread: a browser driven by Playwright's synchronous API.

The test reaches the gateway over HTTP, moves its clock (a ``FixedClock``: setting the time is
one assignment), and runs a coroutine on the gateway's loop with :meth:`call` (to read the
audit log or a table).
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.support.clock import FixedClock
from tests.support.served import served

T = TypeVar("T")
START_SECONDS = 60


class ThreadedGateway:
    def __init__(self, settings: Settings, key_store: FileKeyStore, clock: FixedClock) -> None:
        self._settings = settings
        self._key_store = key_store
        self.clock = clock
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="ssbg-gateway", daemon=True)
        self.url = ""
        self.services: Services | None = None
        self.bootstrap_key: IssuedApiKey | None = None

    def __enter__(self) -> "ThreadedGateway":
        self._thread.start()
        if not self._ready.wait(START_SECONDS):
            raise TimeoutError("the gateway did not start")
        if self._failure is not None:
            raise RuntimeError("the gateway did not start") from self._failure
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_SECONDS)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        services = build_services(self._settings, clock=self.clock, key_store=self._key_store)
        try:
            self.bootstrap_key = (await services.bootstrap.initialize()).issued
            self.services = services
            async with served(services) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        finally:
            await services.close()

    def call(self, work: Callable[[Services], Awaitable[T]]) -> T:
        """``work(services)``, run on the gateway's loop; its result."""
        assert self._loop is not None
        assert self.services is not None
        services = self.services

        async def run() -> T:
            return await work(services)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(START_SECONDS)
