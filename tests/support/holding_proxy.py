"""A TCP proxy that can hold a response mid-stream: "the object store stalls half-way through
an object", so a test can catch a gateway at a precise point of a read (a restore being
verified, a download being streamed) without sleeping or guessing at timing.

``hold_after(n)`` lets ``n`` more bytes through from the upstream server to its clients (all
connections together), then forwards nothing more until ``release()``; ``holding`` is set
once a response is held. A client of the proxy can never receive more than was let through,
so a read of an object larger than ``n`` is caught inside that object.
"""

import asyncio
import contextlib

_READ = 65536


class HoldingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._budget: int | None = None  # bytes still let through downstream; None: no limit
        self._open = asyncio.Event()
        self._open.set()
        self.holding = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "HoldingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def hold_after(self, allowed_bytes: int) -> None:
        """Let ``allowed_bytes`` more bytes reach the clients, then hold every response."""
        self._budget = allowed_bytes
        self.holding.clear()

    def release(self) -> None:
        """Forward everything again (held bytes included), without limit."""
        self._budget = None
        self._open.set()

    async def close(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def _let_through(self, chunk: bytes) -> list[bytes]:
        """``chunk`` as the budget lets it through: what to send now, then (after a hold)
        the rest."""
        if self._budget is None or len(chunk) <= self._budget:
            if self._budget is not None:
                self._budget -= len(chunk)
            return [chunk]
        allowed, held = chunk[: self._budget], chunk[self._budget :]
        self._budget = 0
        self._open.clear()
        self.holding.set()
        return [allowed, held]

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, upstream_w}

        async def upstream() -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await client_r.read(_READ):
                    upstream_w.write(data)
                    await upstream_w.drain()
            with contextlib.suppress(OSError):
                upstream_w.close()

        async def downstream() -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await upstream_r.read(_READ):
                    for index, piece in enumerate(self._let_through(data)):
                        if index:
                            await self._open.wait()
                        if piece:
                            client_w.write(piece)
                            await client_w.drain()
            with contextlib.suppress(OSError):
                client_w.close()

        await asyncio.gather(upstream(), downstream())
        self._writers -= {client_w, upstream_w}
