"""Prometheus metrics (SPEC §13.2): what each process counts, and the text a scrape returns.

Two kinds of figures, kept apart on purpose:

* **Process-local events** — backups, restores, authentication failures and request timings —
  are counters and a histogram defined here and incremented where the event completes. Under
  ``ssbg serve --workers N`` every worker is its own process, so prometheus-client's
  multiprocess mode is used: ``ssbg serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
  private directory before any worker starts, each worker writes its values to files there,
  and a scrape (whichever worker answers it) adds up every worker's files. Counts of a worker
  that exited stay in the sum, so totals never go backwards when uvicorn replaces a worker.
  Across *replicas* these counters are per replica, as Prometheus expects: it scrapes each
  replica and ``sum()`` adds them up.
* **Shared state** — open alerts, the incident level, the audit chain head — lives in the
  database and is the same for every worker and replica. It is read at scrape time and
  rendered by :class:`SharedStateCollector`; never cached in a process, so no worker can
  report a stale level. When that read fails, those gauges are left out (an absent series is
  honest, a stale or zero one would lie) and ``ssbg_database_up`` is 0.
"""

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# What ``generate_latest`` writes: the classic text format, whatever the library's newest is.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

BackupResult = Literal["success", "failed", "denied"]
RestoreResult = Literal["completed", "failed", "denied", "rejected"]
BACKUP_RESULTS: Final[tuple[BackupResult, ...]] = ("success", "failed", "denied")
RESTORE_RESULTS: Final[tuple[RestoreResult, ...]] = ("completed", "failed", "denied", "rejected")

# The label of a request that matched no route: the raw path would let any scanner create
# series without bound.
UNMATCHED_ROUTE: Final = "<unmatched>"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD: Final = "OTHER"

# Control-plane requests take milliseconds; uploads and downloads of large backups minutes.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)

# The metrics this process updates. Never exposed directly: see ``render``.
PROCESS_REGISTRY: Final = CollectorRegistry(auto_describe=True)

backups_total: Final = Counter(
    "ssbg_backups_total",
    "Backups by result: success (stored, ACTIVE), failed (recorded PROCESSING -> FAILED, as "
    "BACKUP_FAILED in the audit log), denied (refused by policy before any byte was stored).",
    ["result"],
    registry=PROCESS_REGISTRY,
)
backup_bytes_total: Final = Counter(
    "ssbg_backup_bytes_total",
    "Plaintext bytes of successfully stored backups.",
    registry=PROCESS_REGISTRY,
)
restores_total: Final = Counter(
    "ssbg_restores_total",
    "Restore requests by how they ended: completed (verified, token issued or collectable), "
    "failed (verification failed or was interrupted), denied (refused at admission), "
    "rejected (refused by a second admin).",
    ["result"],
    registry=PROCESS_REGISTRY,
)
auth_failures_total: Final = Counter(
    "ssbg_auth_failures_total",
    "Requests refused for a missing, unknown, revoked, expired or IP-disallowed API key "
    "(401 AUTH_INVALID_KEY) or for too many such failures from the address (429).",
    registry=PROCESS_REGISTRY,
)
http_request_duration_seconds: Final = Histogram(
    "ssbg_http_request_duration_seconds",
    "Time from a request's arrival until its response was sent in full, by route template "
    "(never the raw path), method and status.",
    ["route", "method", "status"],
    buckets=DURATION_BUCKETS,
    registry=PROCESS_REGISTRY,
)

# Every labelled series exists from the start (at 0), so rate() and absent() behave before
# the first event.
for _result in BACKUP_RESULTS:
    backups_total.labels(result=_result)
for _restore_result in RESTORE_RESULTS:
    restores_total.labels(result=_restore_result)


def record_backup(result: BackupResult, stored_bytes: int = 0) -> None:
    backups_total.labels(result=result).inc()
    if result == "success" and stored_bytes > 0:
        backup_bytes_total.inc(stored_bytes)


def record_restore(result: RestoreResult) -> None:
    restores_total.labels(result=result).inc()


def record_auth_failure() -> None:
    auth_failures_total.inc()


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    http_request_duration_seconds.labels(
        route=route,
        method=method if method in _METHODS else OTHER_METHOD,
        status=str(status),
    ).observe(seconds)


# -- scrape-time shared state -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedState:
    """What the database says at scrape time (the same for every worker and replica)."""

    alerts_open: Mapping[str, int]  # severity -> count of alerts not RESOLVED
    incident_level: int  # the effective level (an ALERT that reverted by itself reads 0)
    audit_head_sequence: int


class SharedStateCollector:
    """Renders one scrape's :class:`SharedState`; ``None`` when it could not be read."""

    def __init__(self, state: SharedState | None) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "ssbg_database_up",
            "1 when this scrape read the shared state (alerts, incident level, audit head) "
            "from the database; 0 when it could not, and those gauges are left out.",
        )
        up.add_metric([], 1.0 if self._state is not None else 0.0)
        yield up
        if self._state is None:
            return
        alerts = GaugeMetricFamily(
            "ssbg_alerts_open",
            "Alerts not RESOLVED (NEW, ACKNOWLEDGED, INVESTIGATING, ESCALATED), by severity.",
            labels=["severity"],
        )
        for severity, count in sorted(self._state.alerts_open.items()):
            alerts.add_metric([severity], float(count))
        yield alerts
        yield GaugeMetricFamily(
            "ssbg_incident_level",
            "The effective incident level: 0 NORMAL, 1 ALERT, 2 QUARANTINE, 3 LOCKDOWN.",
            value=float(self._state.incident_level),
        )
        yield GaugeMetricFamily(
            "ssbg_audit_head_sequence",
            "Sequence number of the last entry of the audit chain.",
            value=float(self._state.audit_head_sequence),
        )


class _ProcessMetrics:
    """This process's own metrics, when it is the only process (no multiprocess mode)."""

    def collect(self) -> Iterable[Metric]:
        return PROCESS_REGISTRY.collect()


def multiprocess_mode() -> bool:
    """Whether this process's metric values live in files under ``PROMETHEUS_MULTIPROC_DIR``.

    Asked of prometheus-client itself, which chose when it was first imported: the
    environment could have changed since, and a scrape must read where the values are.
    """
    return values.ValueClass is not values.MutexValue


def render(state: SharedState | None) -> bytes:
    """The exposition text of one scrape: every worker's events plus the shared state."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ProcessMetrics())
    registry.register(SharedStateCollector(state))
    return generate_latest(registry)


def mark_this_process_dead() -> None:
    """On a worker's shutdown: drop its live-gauge files (its counters stay in the sum)."""
    if multiprocess_mode() and os.environ.get(MULTIPROC_DIR_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
