"""The dashboard's in-memory live view (gateway/status/live.py), on a fake clock."""

from __future__ import annotations

import itertools

from devices.model import Reading
from gateway.status.live import NS, LiveState


class Clock:
    def __init__(self, start_s: float = 1_800_000_000.0) -> None:
        self.now = int(start_s * NS)

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * NS)


def reading(device: str, metric: str, value: float | bool | str, ts: int = 0) -> Reading:
    return Reading(device, metric, value, ts)


def test_sparkline_holds_one_mean_per_bucket_for_the_last_hour_only() -> None:
    clock = Clock()
    live = LiveState(bucket=10, points=360, clock=clock)
    for minute in range(90):  # an hour and a half, six readings a minute
        for _ in range(6):
            live.observe(reading("gh-1", "temperature", float(minute)))
            clock.advance(10)
    series = live.get("gh-1", "temperature")
    assert series is not None
    points = live.sparkline(series)
    assert 355 <= len(points) <= 360  # the last hour, not the first half hour
    assert points[0][1] >= 30 and points[-1][1] == 89.0
    assert [t for t, _ in points] == sorted(t for t, _ in points)
    assert all(b[0] - a[0] == 10 for a, b in itertools.pairwise(points))


def test_readings_in_one_bucket_are_averaged_and_bools_count_as_0_or_1() -> None:
    clock = Clock()
    live = LiveState(clock=clock)
    for value in (10.0, 20.0, 30.0):
        live.observe(reading("d", "level", value))
    for value in (True, False, True, True):
        live.observe(reading("d", "power", value))
    live.observe(reading("d", "mode", "auto"))
    assert live.sparkline(live.get("d", "level"))[-1][1] == 20.0  # type: ignore[arg-type]
    assert live.sparkline(live.get("d", "power"))[-1][1] == 0.75  # type: ignore[arg-type]
    assert live.sparkline(live.get("d", "mode")) == []  # type: ignore[arg-type]
    assert [r["value"] for r in live.readings()] == [30.0, "auto", True]  # level, mode, power


def test_series_beyond_the_cap_are_refused_and_counted() -> None:
    live = LiveState(max_series=3, clock=Clock())
    for i in range(5):
        live.observe(reading(f"d{i}", "t", 1.0))
    live.observe(reading("d0", "t", 2.0))  # a known series still updates
    assert live.series_count == 3 and live.refused == 2
    assert [r["device"] for r in live.readings()] == ["d0", "d1", "d2"]
    assert live.get("d0", "t").value == 2.0  # type: ignore[union-attr]
    assert {d["device"] for d in live.devices_seen()} == {f"d{i}" for i in range(5)}


def test_changed_since_finds_only_series_touched_after_the_mark() -> None:
    live = LiveState(clock=Clock())
    live.observe(reading("a", "t", 1.0))
    live.observe(reading("b", "t", 1.0))
    since = live.mark() + 1
    live.observe(reading("b", "t", 2.0))
    assert [s.device for s in live.changed_since(since)] == ["b"]


def test_devices_go_offline_when_silent() -> None:
    clock = Clock()
    live = LiveState(clock=clock)
    live.observe(reading("gh-1", "t", 1.0))
    assert live.devices_seen(offline_after=60)[0]["online"] is True
    clock.advance(61)
    assert live.devices_seen(offline_after=60)[0]["online"] is False


def test_devices_come_from_the_device_registry_when_the_gateway_has_one() -> None:
    from types import SimpleNamespace

    from gateway.status import views

    live = LiveState(clock=Clock())
    live.observe(reading("gh-1", "t", 1.0))
    registry = SimpleNamespace(snapshot=lambda: [
        {"device": "gh-1", "convention": "outpost", "online": False,
         "online_reason": "lwt_offline", "last_seen": "2026-11-27T10:00:00.000Z",
         "metrics": {"t": {"value": 1.0, "unit": "", "ts": "2026-11-27T10:00:00.000Z"}}},
        {"device": "fan-1", "convention": "outpost", "online": False,
         "online_reason": "never_seen", "last_seen": None, "metrics": {}}])
    gw = SimpleNamespace(devices=registry)
    out = views.devices(gw, live)  # type: ignore[arg-type]
    assert [(d["device"], d["online"], d["online_reason"], d["readings"]) for d in out] == [
        ("gh-1", False, "lwt_offline", 1), ("fan-1", False, "never_seen", 0)]
    assert views.devices(SimpleNamespace(), live)[0]["online"] is True  # type: ignore[arg-type]
