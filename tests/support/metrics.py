"""Scraping ``/metrics`` and reading samples out of it (parsed, never pattern-matched)."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

LOOPBACK_CLIENT = ("127.0.0.1", 50001)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample as ``(name, labels) -> value``."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def sample_names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def series_of(samples: Samples, name: str) -> list[Mapping[str, str]]:
    return [dict(labels) for sample_name, labels in samples if sample_name == name]


@asynccontextmanager
async def app_client(
    app: FastAPI, client: tuple[str, int] = LOOPBACK_CLIENT
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``app`` at the server's root, connecting from ``client`` (the app's
    services are the test's: see the ``client`` fixture)."""
    transport = httpx.ASGITransport(app=app, client=client, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ssbg.test") as http:
        yield http


async def scrape(http: httpx.AsyncClient, url: str = "/metrics") -> Samples:
    response = await http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)
