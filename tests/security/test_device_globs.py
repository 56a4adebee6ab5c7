"""A device name chosen against a rule's ``match: {device: GLOB}`` cannot stall the gateway.

The glob used to become a regular expression (``*a*a*a*b`` → ``.*a.*a.*a.*b``)
that backtracks into every way of cutting the name: a few kB of ``a`` held the
event loop for 21 s. Device ids are capped at 128 characters
(``devices.model.MAX_DEVICE_ID``) before any rule sees them, and a glob is now
matched left to right without backtracking, so the work grows with the name's
length, never with a power of it.
"""

from __future__ import annotations

import fnmatch
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.model import MAX_DEVICE_ID
from rules.matching import compile_glob
from tests.gateway.harness import Device, GatewayProcess
from tests.security.rulegateway import HOT_RULE, hot_fires, rules_gateway_config

# Globs against which a name of "a" backtracks a regular expression into every split.
ADVERSARIAL = ["*a*a*a*a*b", "*a*a*a*a*a*a*a*a*b", "*a?a*a?a*b", "a*a*a*a*a*a*?b", "*?*?*?*?*b*"]
# The costliest names for a left-to-right matcher: the head and tail fit, and a middle
# part almost matches at every place (or is nowhere), so every place is tried.
SCANS = [
    ("*a?a?b*", lambda n: "a" * n),
    ("*ab?ab?abc*", lambda n: "ab" * (n // 2)),
    ("*a*a*a*a*c*b", lambda n: "a" * (n - 1) + "b"),
    ("a*?a?*a?a?c*b", lambda n: "a" * (n - 1) + "b"),
    ("*?*?*?*?*b*", lambda n: "a" * n),
]


class CountingName(str):
    """A device name that counts the characters the matcher examines in it.

    The matcher reads a name only through ``startswith`` (a literal at a fixed
    place: its length is examined) and ``find`` (a scan: up to the end of what it
    found, or over the whole range when it found nothing).
    """

    examined: int

    def __new__(cls, text: str) -> CountingName:
        name = super().__new__(cls, text)
        name.examined = 0
        return name

    def startswith(self, prefix, start=0, end=None):  # type: ignore[no-untyped-def, override]
        self.examined += len(prefix)
        return super().startswith(prefix, start, end)

    def find(self, sub, start=0, end=None):  # type: ignore[no-untyped-def, override]
        stop = len(self) if end is None else end
        hit = super().find(sub, start, end)
        self.examined += (hit + len(sub) - start) if hit >= 0 else max(0, stop - start)
        return hit


def examined(glob: str, name: str) -> int:
    counting = CountingName(name)
    compile_glob(glob)(counting)
    assert counting.examined > 0, "the matcher did not read the name through str methods"
    return counting.examined


def test_matching_work_grows_linearly_with_the_name() -> None:
    lengths = (MAX_DEVICE_ID, 4 * MAX_DEVICE_ID, 16 * MAX_DEVICE_ID)
    for glob, make in SCANS:
        work = [examined(glob, make(n)) for n in lengths]
        for n, w in zip(lengths, work, strict=True):
            assert n / 2 <= w <= len(glob) * (n + 1), (glob, n, w)  # every place, boundedly
        assert work[2] <= 4.5 * work[1] and work[1] <= 4.5 * work[0], (glob, work)
    for glob in ADVERSARIAL:
        assert examined(glob, "a" * 16 * MAX_DEVICE_ID) <= len(glob) * (16 * MAX_DEVICE_ID + 1)


def test_a_longest_adversarial_id_is_matched_at_once() -> None:
    """A generous bound: the old expression took 0.27 s for four stars, minutes for eight."""
    for glob in ADVERSARIAL:
        name = "a" * MAX_DEVICE_ID
        started = time.perf_counter()
        assert compile_glob(glob)(name) is False
        assert time.perf_counter() - started < 0.05, glob


@settings(max_examples=500, deadline=None)
@given(glob=st.text("ab*?", min_size=1, max_size=10), name=st.text("ab", max_size=12))
def test_the_matcher_agrees_with_fnmatch(glob: str, name: str) -> None:
    assert compile_glob(glob)(name) is fnmatch.fnmatchcase(name, glob)


SLOW_RULE = """
  - name: crafted
    match: {metric: temperature, device: "*a*a*a*a*a*a*a*a*b"}
    when: value > 30
"""


def test_crafted_device_ids_do_not_stall_the_gateway(tmp_path, mosquitto, influxdb,
                                                     influx_db) -> None:
    config = rules_gateway_config(tmp_path, mosquitto, influxdb, influx_db)
    (tmp_path / "rules.d" / "greenhouse.yaml").write_text(HOT_RULE + SLOW_RULE)
    longest, too_long = "a" * MAX_DEVICE_ID, "a" * 4096
    with GatewayProcess(config), \
            Device(mosquitto.port, subscribe=["outpost/alerts/#", "outpost/deadletter"]) as device:
        device.publish(f"sensors/{too_long}/temperature", "31")
        [dead] = device.json_messages(1, timeout=10)
        assert dead["reason"] == "bad_device" and str(MAX_DEVICE_ID) in dead["detail"]
        device.publish(f"sensors/{longest}/temperature", "31")  # accepted: matched, no alert
        started = time.monotonic()
        assert hot_fires(device, "gh-1", timeout=5), "the event loop is stuck"
        assert time.monotonic() - started < 5
        device.publish(f"sensors/{longest}b/temperature", "31")  # 129 characters: refused
        [dead] = device.json_messages(1, timeout=10)
        assert dead["reason"] == "bad_device"
        device.publish(f"sensors/{longest[:-1]}b/temperature", "31")  # 128, matches the glob
        [crafted] = device.json_messages(1, timeout=5)
    assert (crafted["rule"], crafted["device"], crafted["state"]) == (
        "crafted", longest[:-1] + "b", "firing")
