"""The S3 fault proxy does what the multipart cells rely on: it forwards untouched while
disarmed, recognises each step, fails it as armed (every time, or only the next K times), and
a lost answer really happened at the server.

Requests go through the proxy as plain (unsigned) HTTP, which moto accepts for writes; what the
server holds is read with a signed client straight from moto.
"""

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from tests.support.processes import MotoServer
from tests.support.s3_faults import Failure, S3FaultProxy, Step, classify

BUCKET = "fault-proxy-test"


@pytest.fixture
async def proxy(moto_server: MotoServer) -> AsyncIterator[S3FaultProxy]:
    started = await S3FaultProxy(moto_server.url).start()
    yield started
    await started.stop()


@pytest.fixture
async def http(proxy: S3FaultProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        assert (await client.put(f"/{BUCKET}")).status_code == 200
        yield client


@pytest.fixture
async def moto(moto_server: MotoServer) -> AsyncIterator[Any]:
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield client


async def _stored(moto: Any, key: str) -> bytes | None:
    """What moto holds at ``key`` (read straight from it, not through the proxy)."""
    try:
        response = await moto.get_object(Bucket=BUCKET, Key=key)
    except ClientError:
        return None
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


@pytest.mark.parametrize(
    ("method", "key", "query", "step"),
    [
        ("POST", "b/data.enc", {"uploads": ""}, Step.CREATE),
        ("PUT", "b/data.enc", {"partNumber": "3", "uploadId": "u"}, Step.PART),
        ("POST", "b/data.enc", {"uploadId": "u"}, Step.COMPLETE),
        ("DELETE", "b/data.enc", {"uploadId": "u"}, Step.ABORT),
        ("PUT", "b/dek.wrapped", {}, Step.PUT),
        ("PUT", "", {}, Step.OTHER),  # CreateBucket
        ("GET", "", {"uploads": ""}, Step.OTHER),  # ListMultipartUploads
        ("DELETE", "b/data.enc", {}, Step.OTHER),  # DeleteObject
    ],
)
def test_each_multipart_step_is_recognised(
    method: str, key: str, query: dict[str, str], step: Step
) -> None:
    assert classify(method, key, query, {}) is step


async def test_disarmed_it_forwards_and_armed_it_fails_every_time_until_disarmed(
    proxy: S3FaultProxy, http: httpx.AsyncClient, moto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert (await http.put(f"/{BUCKET}/a/dek.wrapped", content=b"one")).status_code == 200
    rule = proxy.arm(Step.PUT, Failure.ERROR_503, key_suffix="dek.wrapped")

    for _ in range(3):
        refused = await http.put(f"/{BUCKET}/b/dek.wrapped", content=b"two")
        assert refused.status_code == 503
        assert b"<Code>ServiceUnavailable</Code>" in refused.content
    assert (await http.put(f"/{BUCKET}/b/data.enc", content=b"other key")).status_code == 200
    assert rule.hits == 3

    proxy.disarm(rule)
    assert (await http.put(f"/{BUCKET}/b/dek.wrapped", content=b"two")).status_code == 200
    assert await _stored(moto, "b/dek.wrapped") == b"two"
    failed = [seen.failed for seen in proxy.steps(Step.PUT)]
    assert failed == [False, True, True, True, False, False]
    assert caplog.records == []  # nothing went wrong in the proxy itself


async def test_a_dropped_connection_gets_no_answer_and_the_server_never_sees_it(
    proxy: S3FaultProxy, http: httpx.AsyncClient, moto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rule = proxy.arm(Step.PUT, Failure.DROP, times=1)

    with pytest.raises(httpx.RemoteProtocolError):
        await http.put(f"/{BUCKET}/c/dek.wrapped", content=b"never stored")

    assert rule.hits == 1
    assert await _stored(moto, "c/dek.wrapped") is None
    # Only the next K requests: the one after passes.
    assert (await http.put(f"/{BUCKET}/c/dek.wrapped", content=b"x")).status_code == 200
    assert caplog.records == []


async def test_a_lost_answer_means_the_server_did_the_step(
    proxy: S3FaultProxy, http: httpx.AsyncClient, moto: Any
) -> None:
    proxy.arm(Step.PUT, Failure.ANSWER_LOST, key_suffix="dek.wrapped")

    with pytest.raises(httpx.RemoteProtocolError):
        await http.put(f"/{BUCKET}/d/dek.wrapped", content=b"stored anyway")

    assert await _stored(moto, "d/dek.wrapped") == b"stored anyway"


async def test_only_the_armed_part_number_fails(
    proxy: S3FaultProxy, http: httpx.AsyncClient
) -> None:
    rule = proxy.arm(Step.PART, Failure.ERROR_500, part_number=2)
    created = await http.post(f"/{BUCKET}/e/data.enc", params={"uploads": ""})
    upload_id = created.text.split("<UploadId>")[1].split("</UploadId>")[0]

    def part(number: int) -> dict[str, str]:
        return {"partNumber": str(number), "uploadId": upload_id}

    assert (await http.put(f"/{BUCKET}/e/data.enc", params=part(1), content=b"1")).is_success
    failed = await http.put(f"/{BUCKET}/e/data.enc", params=part(2), content=b"2")
    assert failed.status_code == 500
    assert b"<Code>InternalError</Code>" in failed.content
    assert rule.hits == 1
    assert [(p.part_number, p.failed) for p in proxy.steps(Step.PART)] == [(1, False), (2, True)]
