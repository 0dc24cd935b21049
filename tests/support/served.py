"""The gateway served by a real uvicorn on the test's own event loop, on a kernel-picked port.

For client commands (``ssbg backup``, ``ssbg restore``, ``ssbg audit export``), which talk HTTP
to a running gateway. Readiness is an event, not a sleep.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from ssbg.api.app import create_app
from ssbg.services.container import Services


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@asynccontextmanager
async def served(services: Services) -> AsyncIterator[str]:
    """Serve ``services`` over HTTP; yields the base URL (``SSBG_URL``)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = _Server(uvicorn.Config(create_app(services=services), lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await asyncio.wait_for(server.ready.wait(), timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        listener.close()
