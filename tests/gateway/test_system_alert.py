"""The gateway's own alerts have the same payload as a rule's, active and fired at once."""

from __future__ import annotations

from gateway.actions.alerts import system_alert
from rules.events import ALERT_FIELDS

AT = 1_795_755_841_123_456_789
STAMP = "2026-11-27T05:04:01.123Z"


def test_a_firing_system_alert_is_active_and_fired_at_its_instant() -> None:
    event = system_alert(
        rule="command_failed",
        device="fan-1",
        firing=True,
        at_ns=AT,
        severity="critical",
        value=None,
        message="fan-1 did not acknowledge speed=100 after 2 retries",
        labels={"command_id": "abc"},
        trace_id="t-1",
    )
    assert event == {
        "rule": "command_failed",
        "device": "fan-1",
        "state": "firing",
        "at": STAMP,
        "severity": "critical",
        "value": None,
        "message": "fan-1 did not acknowledge speed=100 after 2 retries",
        "labels": {"command_id": "abc"},
        "active_at": STAMP,
        "fired_at": STAMP,
        "resolved_at": None,
        "trace_id": "t-1",
    }
    assert tuple(event) == ALERT_FIELDS


def test_a_resolved_system_alert_has_only_its_resolution_time() -> None:
    event = system_alert(
        rule="influx_unauthorized",
        device="influxdb",
        firing=False,
        at_ns=AT,
        severity="critical",
        value=None,
        message="InfluxDB accepts the gateway's credentials again",
    )
    assert (event["state"], event["active_at"], event["fired_at"]) == ("resolved", None, None)
    assert event["resolved_at"] == STAMP
    assert event["labels"] == {} and event["trace_id"] is None


def test_the_value_is_carried_as_given() -> None:
    event = system_alert(
        rule="influx_unauthorized",
        device="influxdb",
        firing=True,
        at_ns=AT,
        severity="critical",
        value=401,
        message="refused",
    )
    assert event["value"] == 401
