"""Every kind of event reads as one sentence: what happened, to which device, and why; never
a Python or JSON structure, never ``None``. (The same from a real gateway, its journal and
its log: test_events_cli.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.actions.alerts import system_alert
from gateway.actions.policy import CommandPolicy, Refused
from gateway.actions.sentences import KINDS, describe
from gateway.config.schema import CommandSpec, DeviceConfig
from rules import AlertEvent, AlertState
from tests.cli.test_events_cli import JOURNAL_KINDS, REPRS

T = 1_795_755_841_000_000_000


def _refusal(device: str, settings: dict[str, Any]) -> Refused:
    policy = CommandPolicy(
        {"fan-1": DeviceConfig(commands={"speed": CommandSpec(type="int", min=0, max=100)})}
    )
    with pytest.raises(Refused) as caught:
        policy.check(device, settings)
    return caught.value


def _refused(device: str, settings: dict[str, Any], origin: dict[str, Any]) -> dict[str, Any]:
    why = _refusal(device, settings)
    return {"device": device, **origin, "set": settings, "reason": why.reason, "detail": str(why)}


RULE = {"origin": "rule", "rule": "cool_greenhouse", "alert_device": "gh-1"}
API = {"origin": "api", "rule": None}
HOT = AlertEvent(
    "greenhouse_hot", "gh-1", AlertState.FIRING, T, "warning", 31.5, "gh-1 is 31.5 °C",
    {"zone": "north"}, T, T, None, "5f1c2a9b3e",
).to_dict()  # fmt: skip
SILENT = AlertEvent(
    "sensor_silent", "gh-2", AlertState.PENDING, T, "", None, "", {}, T, None, None
).to_dict()
FAILED = system_alert(
    rule="command_failed", device="fan-3", firing=True, at_ns=T, severity="critical",
    value=None, message="fan-3 did not acknowledge speed=1 after 1 retries",
    labels={"command_id": "abc"},
)  # fmt: skip

# (kind, the payload the gateway journals, the sentence) for every kind and the worst cases.
SAMPLES: list[tuple[str, dict[str, Any], str]] = [
    ("alert", HOT, "alert greenhouse_hot FIRING on gh-1: gh-1 is 31.5 °C (warning)"),
    ("alert", SILENT, "alert sensor_silent PENDING on gh-2"),
    ("alert", FAILED,
     "alert command_failed FIRING on fan-3: fan-3 did not acknowledge speed=1 after 1 retries "
     "(critical)"),
    ("alert", {**SILENT, "message": "", "value": 27.25, "severity": None},
     "alert sensor_silent PENDING on gh-2: value 27.25"),
    ("alert_inhibited", {**HOT, "message": "no reading for 10m"},
     "alert greenhouse_hot FIRING on gh-1: no reading for 10m (warning); not notified and no "
     "action run: the gateway could not hear during its window"),
    ("command",
     {"device": "fan-1", **RULE, "id": "7ef34d18871c4097", "set": {"speed": 100},
      "topic": "devices/fan-1/set"},
     "fan-1: set speed=100 (rule cool_greenhouse on gh-1; command 7ef34d18871c4097)"),
    ("command",
     {"device": "plug-1", **API, "id": "a1", "set": {"power": "ON", "label": "porch light"}},
     'plug-1: set power=ON label="porch light" (sent by hand; command a1)'),
    ("command",
     {"device": "fan-1", "origin": "journal", "rule": "cool_greenhouse", "id": "a2",
      "set": {"on": True}},
     "fan-1: set on=true (resent after a restart, rule cool_greenhouse; command a2)"),
    ("command_refused", _refused("fan-1", {"speed": 150}, RULE),
     "fan-1: REFUSED speed=150: speed: 150 is above the maximum 100 "
     "(rule cool_greenhouse on gh-1)"),
    ("command_refused", _refused("fan-9", {"speed": 1}, API),
     "fan-9: REFUSED speed=1: device fan-9 is not listed under devices: (sent by hand)"),
    ("command_refused", _refused("fan-1", {"mode": "turbo"}, API),
     "fan-1: REFUSED mode=turbo: mode is not among the commands of fan-1 (speed) (sent by hand)"),
    ("command_refused", _refused("fan-1/set", {"speed": 1}, API),
     "fan-1/set: REFUSED speed=1: the device id cannot be part of an MQTT topic (sent by hand)"),
    ("command_deferred", {"device": "fan-1", **RULE, "set": {"speed": 0}, "send_in_s": 4.2},
     "fan-1: speed=0 waits for min_interval, sent in 4.2 s (rule cool_greenhouse on gh-1)"),
    ("command_retry",
     {"device": "fan-3", **RULE, "id": "c3", "attempt": 1, "set": {"speed": 1}},
     "fan-3: no answer yet, sending speed=1 again (retry 1; command c3)"),
    ("command_acked", {"device": "fan-1", **RULE, "id": "c1", "set": {"speed": 100}},
     "fan-1: acknowledged speed=100 (rule cool_greenhouse on gh-1; command c1)"),
    ("command_rejected",
     {"device": "fan-2", **RULE, "id": "c2", "set": {"on": True}, "reason": "jammed"},
     "fan-2: REJECTED on=true: jammed (rule cool_greenhouse on gh-1; command c2)"),
    ("command_timed_out",
     {"device": "fan-3", **API, "id": "c3", "set": {"speed": 1}, "attempts": 2},
     "fan-3: never acknowledged speed=1 after 2 attempts (sent by hand; command c3)"),
    ("command_superseded",
     {"device": "fan-3", **RULE, "id": "c4", "set": {"speed": 1},
      "superseded_by": "newer command"},
     "fan-3: speed=1 replaced by a newer command (rule cool_greenhouse on gh-1; command c4)"),
    ("notification",
     {"notifier": "ntfy", "outcome": "sent", "rule": "greenhouse_hot", "device": "gh-1",
      "state": "firing", "attempts": 1},
     "notifier ntfy: sent greenhouse_hot FIRING on gh-1 (1 attempt)"),
    ("notification",
     {"notifier": "slack", "outcome": "failed", "rule": "greenhouse_hot", "device": "gh-1",
      "state": "resolved", "error": "HTTP 500", "attempts": 4},
     "notifier slack: FAILED to send greenhouse_hot RESOLVED on gh-1 (4 attempts, HTTP 500)"),
    ("notification",
     {"notifier": "ntfy", "outcome": "silenced", "rule": "greenhouse_hot", "device": "gh-2",
      "state": "firing", "silence": 3},
     "notifier ntfy: silenced greenhouse_hot FIRING on gh-2 (silence 3)"),
    ("notification",
     {"notifier": "ntfy", "outcome": "dropped", "rule": "greenhouse_hot", "device": "gh-2",
      "state": "firing", "reason": "queue full"},
     "notifier ntfy: dropped (its queue was full) greenhouse_hot FIRING on gh-2"),
    ("rules_reload",
     {"outcome": "applied", "running": 4, "kept": 3, "changed": 1, "added": 0, "removed": 0,
      "alerts_dropped": 0},
     "rules reloaded: 4 running (3 kept, 1 changed, 0 added, 0 removed)"),
    ("rules_reload",
     {"outcome": "refused", "running": 4,
      "errors": ["rules.d/hot.yaml:6:27: rule hot: command to fan-9: device fan-9 is not "
                 "listed under devices:", "rules.d/hot.yaml:9:17: when: unexpected end"],
      "more_errors": 0},
     "rules reload REFUSED, the previous 4 rules keep running: rules.d/hot.yaml:6:27: rule hot: "
     "command to fan-9: device fan-9 is not listed under devices: (and 1 more)"),
]  # fmt: skip


def test_every_kind_of_event_has_a_sentence_and_every_sample_is_one() -> None:
    assert set(KINDS) == JOURNAL_KINDS  # every kind the gateway journals has its sentence
    assert {kind for kind, _, _ in SAMPLES} == set(KINDS)
    for kind, payload, sentence in SAMPLES:
        text = describe(kind, payload)
        assert text == sentence, (kind, payload)
        assert not REPRS.search(text), text
