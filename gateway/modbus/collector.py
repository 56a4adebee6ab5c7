"""Modbus metrics for Prometheus, read at scrape time from the pollers and buses.

``outpost_modbus_requests_total{device,outcome}`` (answers, timeouts, retries,
unreachable), ``outpost_modbus_exceptions_total{device,register,code}``,
``outpost_modbus_events_total{device,event}`` (polls, late_polls, readings,
dropped readings, split reads, writes), ``outpost_modbus_device_up{device}``,
``outpost_modbus_last_answer_timestamp_seconds{device}`` and
``outpost_modbus_bus_connected{bus}`` with ``outpost_modbus_bus_events_total{bus,event}``.
Nothing is copied on the polling path: the pollers' own counters are read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.metrics import Family, Sample
from gateway.modbus.bus import Bus
from gateway.modbus.poller import DevicePoller

_REQUESTS = ("answers", "timeouts", "retries")

FAMILIES = (
    Family("outpost_modbus_requests", "Modbus requests by outcome: answers (an exception "
           "response too), timeouts (each attempt), retries, unreachable:<reason> (timeout "
           "after every retry, no_connection, exception_0B …)", ("device", "outcome"), "counter"),
    Family("outpost_modbus_exceptions", "Exception responses per register and code (02 illegal "
           "data address, 04 device failure, 06 busy …)", ("device", "register", "code"),
           "counter"),
    Family("outpost_modbus_events", "Modbus poller counters: polls, late_polls, readings, "
           "dropped:<metric>:<reason>, split_reads, bad_answers, writes_acked, writes_rejected, "
           "write_failures", ("device", "event"), "counter"),
    Family("outpost_modbus_device_up", "1 while a Modbus device answers (0 once it does not)",
           ("device",)),
    Family("outpost_modbus_last_answer_timestamp_seconds",
           "When a Modbus device last answered a poll with readings (Unix time)", ("device",)),
    Family("outpost_modbus_bus_connected", "1 while a Modbus link (RS-485 port or TCP "
           "connection) is open", ("bus",)),
    Family("outpost_modbus_bus_events", "Modbus link counters: connects, connect_failures, "
           "disconnects", ("bus", "event"), "counter"),
)  # fmt: skip


def modbus_samples(pollers: Iterable[DevicePoller], buses: Iterable[Bus]) -> Iterator[Sample]:
    for poller in pollers:
        device = poller.device
        for name, value in sorted(dict(poller.counters).items()):
            if name in _REQUESTS or name.startswith("unreachable:"):
                yield "outpost_modbus_requests", (device, name), value
            else:
                yield "outpost_modbus_events", (device, name), value
        for (metric, code), value in sorted(dict(poller.exceptions).items()):
            yield "outpost_modbus_exceptions", (device, metric, code), value
        yield "outpost_modbus_device_up", (device,), 1.0 if poller.online else 0.0
        if poller.last_answer_ns:
            yield "outpost_modbus_last_answer_timestamp_seconds", (device,), (
                poller.last_answer_ns / 1e9
            )
    for bus in buses:
        yield "outpost_modbus_bus_connected", (bus.name,), 1.0 if bus.connected else 0.0
        for name, value in sorted(dict(bus.counters).items()):
            yield "outpost_modbus_bus_events", (bus.name, name), value
