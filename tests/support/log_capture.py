"""The gateway's log lines as a test sees them: JSON, through the gateway's own configuration.

``structlog.testing.capture_logs`` misses loggers that an earlier test already used (the
gateway caches them on first use), so tests read what the configured handler writes instead.
"""

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ssbg.infrastructure.log_config import configure_logging


@contextmanager
def logged_events() -> Iterator[list[dict[str, Any]]]:
    """The events logged inside the block, each a dict (filled in when the block exits)."""
    configure_logging("INFO", "json")
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    events: list[dict[str, Any]] = []
    try:
        yield events
    finally:
        events.extend(json.loads(line) for line in buffer.getvalue().splitlines() if line.strip())
        configure_logging("INFO", "console")
