"""The proxy the kill -9 cells hold the object store with: it forwards everything untouched
until armed, then lets exactly the allowed bytes through and holds the rest until released."""

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from tests.support.holding_proxy import HoldingProxy

RESPONSE = os.urandom(300_000)


@pytest.fixture
async def proxy() -> AsyncIterator[HoldingProxy]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)  # the "request"
        writer.write(RESPONSE)
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(answer, "127.0.0.1", 0)
    held = await HoldingProxy("127.0.0.1", upstream.sockets[0].getsockname()[1]).start()
    yield held
    await held.close()
    upstream.close()
    await upstream.wait_closed()


async def fetch(proxy: HoldingProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET!")
    await writer.drain()
    return reader, writer


async def test_unarmed_it_forwards_everything(proxy: HoldingProxy) -> None:
    reader, writer = await fetch(proxy)
    assert await reader.read() == RESPONSE
    assert not proxy.holding.is_set()
    writer.close()


async def test_armed_it_holds_after_the_allowed_bytes_until_released(proxy: HoldingProxy) -> None:
    proxy.hold_after(100_001)
    reader, writer = await fetch(proxy)

    first = await reader.readexactly(100_001)
    await proxy.holding.wait()
    proxy.release()
    rest = await reader.read()

    assert first + rest == RESPONSE
    writer.close()
