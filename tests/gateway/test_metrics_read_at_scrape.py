"""Levels are read from the component that owns them when Prometheus scrapes."""

from __future__ import annotations

from prometheus_client import generate_latest

from gateway.metrics import Family, Metrics

FAMILIES = (
    Family("outpost_test_queue", "Items waiting"),
    Family("outpost_test_port_open", "1 while a port is open", ("port",)),
    Family("outpost_test_events", "Events, by kind", ("kind",), "counter"),
)


def _scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_values_come_from_the_component_at_each_scrape() -> None:
    metrics = Metrics()
    state = {"queue": 3, "events": 5}

    def samples():
        yield "outpost_test_queue", (), state["queue"]
        yield "outpost_test_port_open", ("/dev/ttyUSB0",), 1.0
        yield "outpost_test_events", ("lines",), state["events"]

    metrics.read_at_scrape(FAMILIES, samples)
    text = _scrape(metrics)
    assert "outpost_test_queue 3.0" in text
    assert 'outpost_test_port_open{port="/dev/ttyUSB0"} 1.0' in text
    assert 'outpost_test_events_total{kind="lines"} 5.0' in text
    assert "# TYPE outpost_test_events_total counter" in text
    state.update(queue=0, events=9)
    text = _scrape(metrics)
    assert "outpost_test_queue 0.0" in text
    assert 'outpost_test_events_total{kind="lines"} 9.0' in text


def test_a_family_without_samples_is_still_described() -> None:
    metrics = Metrics()
    metrics.read_at_scrape(FAMILIES, lambda: ())
    text = _scrape(metrics)
    assert "# HELP outpost_test_queue Items waiting" in text
    assert "# TYPE outpost_test_port_open gauge" in text


def test_a_component_that_stops_can_take_its_families_away() -> None:
    metrics = Metrics()
    collector = metrics.read_at_scrape(FAMILIES, lambda: [("outpost_test_queue", (), 1)])
    metrics.registry.unregister(collector)
    assert "outpost_test_queue" not in _scrape(metrics)
