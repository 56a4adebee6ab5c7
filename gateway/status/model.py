"""The narrow read model of a running gateway, for the HTTP layer and the dashboard.

The HTTP layer never sees the components themselves: :mod:`gateway.wiring`
builds one :class:`StatusModel` from them, and the views
(:mod:`gateway.status.views`) read only what it offers. Each protocol below
names the few methods a view needs, so a component can change inside without
the dashboard noticing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from gateway.health import Health
from gateway.journal import Entry
from gateway.status.live import LiveState


class DeviceDirectory(Protocol):
    def snapshot(self) -> list[dict[str, Any]]:
        """JSON-ready devices, sorted by id (``/api/v1/devices``)."""
        ...


class RulesReadout(Protocol):
    """What the rules runtime tells about its rules and the alerts it holds."""

    errors: list[str]

    @property
    def files(self) -> list[str]: ...

    def alerts(self) -> Sequence[Any]:
        """Held alerts: each with ``rule``, ``device`` and a ``record`` (state and times)."""
        ...

    def definitions(self) -> Sequence[Any]:
        """The running rules (``name``, ``severity``, ``when.text``, ``match``, ``mark`` …)."""
        ...

    def rule_counters(self) -> dict[str, dict[str, int]]: ...

    def counters(self) -> dict[str, int]: ...


class JournalReadout(Protocol):
    def entries(
        self,
        *,
        since_ns: int | None = None,
        trace_id: str | None = None,
        limit: int | None = None,
        kinds: tuple[str, ...] = (),
        rule: str | None = None,
    ) -> Iterator[Entry]: ...

    def head(self) -> int:
        """Id of the newest entry (0 when empty)."""
        ...


@dataclass(frozen=True)
class StatusModel:
    live: LiveState
    registry: CollectorRegistry
    devices: DeviceDirectory
    rules: RulesReadout
    journal: JournalReadout
    source_connected: Callable[[], bool]
    broker_health: Callable[[], dict[str, Health]]
    """Each broker connection by name (``ingest``, ``link``): state and last error."""
    influx_health: Callable[[], Health]
    """InfluxDB as the writes found it: state and last error."""
    writer_buffered: Callable[[], int]
    pipeline_pending: Callable[[], int]
    has_outbox: bool
