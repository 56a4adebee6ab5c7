"""Sources: where the pipeline's messages come from, each with its acknowledgement.

A source receives messages (MQTT today; serial, Sparkplug and NATS JetStream
follow the same contract) and hands each to the pipeline as
``deliver(topic, payload, token)``. ``token`` is None when nothing needs
acknowledging (MQTT QoS 0); otherwise the pipeline hands it back through
:meth:`Source.ack` once the reading is safe (stored in InfluxDB, or committed
to the outbox), in the order the source delivered them.

Lifecycle: ``start(deliver, deliver_batch)`` → messages flow (on the source's
own thread or on the event loop: ``deliver`` is thread-safe) →
``stop_receiving()`` (anything unacknowledged is redelivered next time) →
``stop()``. A source that receives on the event loop's own thread hands each
read's messages to ``deliver_batch`` at once, when it is given: they skip the
hand-over between threads.

Devices the gateway polls itself (Modbus, :mod:`gateway.modbus`) have no messages
and nothing to acknowledge: their readings enter with ``Pipeline.put``.

Sources register by name here; :mod:`gateway.wiring` builds the configured one
with :func:`create_source`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from gateway.config.schema import Config
from gateway.health import Health
from gateway.metrics import Family, Metrics, Sample

Deliver = Callable[[str, bytes, Any], None]
"""``deliver(topic, payload, token)``: one message for the pipeline."""
DeliverBatch = Callable[[Sequence[tuple[str, bytes, Any]]], None]
"""``deliver_batch([(topic, payload, token), …])``: messages in order, on the event loop."""


class Source(Protocol):
    name: str

    @property
    def connected(self) -> bool:
        """Whether messages can arrive now (the broker connection is up)."""
        ...

    families: Sequence[Family]
    """The source's levels, read at scrape time from :meth:`samples`."""

    def samples(self) -> Iterable[Sample]: ...

    def health(self) -> Health:
        """The connection's state and the reason of its last failure, for the status."""
        ...

    def start(self, deliver: Deliver, deliver_batch: DeliverBatch | None = None) -> None: ...

    def ack(self, tokens: Iterable[Any]) -> None:
        """The readings of these messages are safe: let the source forget them."""
        ...

    def stop_receiving(self) -> None: ...

    def stop(self) -> None: ...


class SourceFactory(Protocol):
    """Builds a source from the gateway's config (each source reads its own section)."""

    def __call__(
        self,
        config: Config,
        subscriptions: Sequence[tuple[str, int]],
        metrics: Metrics,
        *,
        on_state: Callable[[bool], None] | None = None,
    ) -> Source: ...


_SOURCES: dict[str, SourceFactory] = {}


def register_source(name: str, factory: SourceFactory) -> None:
    if name in _SOURCES:
        raise ValueError(f"source {name!r} registered twice")
    _SOURCES[name] = factory


def create_source(
    name: str,
    config: Config,
    subscriptions: Sequence[tuple[str, int]],
    metrics: Metrics,
    *,
    on_state: Callable[[bool], None] | None = None,
) -> Source:
    return _SOURCES[name](config, subscriptions, metrics, on_state=on_state)
