"""The fault-injection scenarios of issue 6, each a function of its size.

The tests call them short (a few seconds of load, a few faults) and assert; the
benchmark (``benchmarks/reliability.py``) calls them long and prints the table in
RELIABILITY.md. Each returns a :class:`~tests.reliability.rig.Result` and leaves the
judging to its caller. Every scenario stops by itself: bounded loads, bounded waits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import threading
import time
from pathlib import Path

from tests.reliability.rig import DB as DB_NAME
from tests.reliability.rig import Result, SeqPublisher, Stack, by_label, seeded, wait_until

# Room for the 10 MB payloads of the bad-input scenario (Mosquitto's own limit is
# 256 MB; a deployment should set it to what its devices need).
BIG_PACKETS = ["max_packet_size 16777216"]


def influx_outage(stack: Stack, *, rate: float = 500, before: float = 2.0,
                  outage: float = 5.0, after: float = 2.0, timeout: float = 60.0) -> Result:
    """influxd stopped (SIGTERM) for ``outage`` s under load, then started again."""
    result = Result(f"InfluxDB down {outage:g} s at {rate:g}/s")
    stack.start_gateway()
    pub = stack.publisher(rate=rate).start()
    t0 = time.monotonic()
    time.sleep(before)
    stack.influx.stop()
    time.sleep(outage)
    stack.influx.start()
    upto = pub.sent - 1
    back = time.monotonic()
    result.recovery_s = stack.wait_recovered(pub, upto, timeout)
    time.sleep(max(0.0, after - result.recovery_s))
    stack.settle(pub, result, timeout)
    result.seconds = time.monotonic() - t0
    assert stack.watch is not None
    try:  # the gauge is refreshed once a second
        wait_until(lambda: stack.metrics().get("outpost_outbox_readings") == 0, 10,
                   "outbox drained", step=0.2)
    except TimeoutError:
        result.notes.append("outbox not empty 10 s after the last reading was stored")
    result.extra["outbox_empty_s"] = time.monotonic() - back
    result.peak_outbox = int(stack.watch.peak_outbox)
    result.extra["outbox_after"] = stack.metrics().get("outpost_outbox_readings")
    stack.count_duplicates(result)
    stack.count_drops(result)
    return result


def broker_restart(stack: Stack, *, rate: float = 500, before: float = 2.0,
                   down: float = 2.0, after: float = 2.0, hard: bool = False,
                   timeout: float = 60.0) -> Result:
    """Mosquitto stopped (SIGTERM, or SIGKILL with ``hard``) mid-stream and started again."""
    how = "SIGKILL" if hard else "SIGTERM"
    result = Result(f"Mosquitto {how}, down {down:g} s, at {rate:g}/s")
    stack.start_gateway()
    pub = stack.publisher(rate=rate).start()
    t0 = time.monotonic()
    time.sleep(before)
    if hard:
        stack.broker.kill()
    else:
        stack.broker.stop()
    time.sleep(down)
    stack.broker.start()
    back = time.monotonic()
    upto = pub.sent - 1
    # Recovered: readings published after the restart are stored (both clients are back)
    # and so is every reading delivered before it.
    stack.wait_flowing(pub, upto, timeout)
    try:
        stack.wait_recovered(pub, upto, timeout)
    except TimeoutError:
        if not hard:
            raise
        result.notes.append("not every delivered reading came back (SIGKILL)")
    result.recovery_s = time.monotonic() - back
    time.sleep(max(0.0, after - (result.recovery_s or 0.0)))
    stack.settle(pub, result, timeout)
    result.seconds = time.monotonic() - t0
    stack.count_duplicates(result)
    stack.count_drops(result)
    result.extra["reconnects"] = stack.metrics().get("outpost_mqtt_reconnects_total")
    return result


def broker_kill_backlog(stack: Stack, *, rate: float = 500, backlog: float = 5.0,
                        timeout: float = 60.0) -> Result:
    """Mosquitto SIGKILLed while it holds a backlog for the (stopped) gateway's session.

    Measures what ``autosave_interval`` bounds: readings the broker acknowledged to the
    publisher after its last save are gone with it.
    """
    interval = stack.broker.autosave_interval
    result = Result(f"Mosquitto SIGKILL with {backlog:g} s of backlog queued, "
                    f"autosave_interval {interval}")
    stack.start_gateway()
    assert stack.gateway.stop() == 0  # its session (and queue) stays in the broker
    pub = stack.publisher(rate=rate).start()
    time.sleep(backlog)
    stack.broker.kill()  # mid-stream: the newest acknowledged readings are not saved yet
    stack.broker.start()
    time.sleep(2.0)
    stack.gateway.start()
    stack.settle(pub, result, 15)
    stack.count_duplicates(result)
    stack.count_drops(result)
    result.notes.append(f"{result.lost:,} delivered readings lost = "
                        f"{result.lost / rate:.1f} s of publishing (bound: autosave_interval "
                        f"{interval} s + its 1 s tick)")
    return result


def gateway_kills(stack: Stack, *, kills: int = 4, rate: float = 500, up: tuple[float, float]
                  = (0.3, 2.5), seed: int | None = None, timeout: float = 60.0) -> Result:
    """The gateway SIGKILLed ``kills`` times at random moments under load, restarted at once."""
    rng = seeded(seed)
    result = Result(f"gateway kill -9 x{kills} at {rate:g}/s")
    stack.start_gateway()
    pub = stack.publisher(rate=rate).start()
    t0 = time.monotonic()
    downtimes = []
    for _ in range(kills):
        time.sleep(rng.uniform(*up))
        stack.gateway.kill()
        down = time.monotonic()
        stack.gateway.start()
        downtimes.append(time.monotonic() - down)
    back = time.monotonic()
    upto = pub.sent - 1
    stack.wait_recovered(pub, upto, timeout)
    result.recovery_s = time.monotonic() - back + downtimes[-1]  # from the last kill
    stack.settle(pub, result, timeout)
    result.seconds = time.monotonic() - t0
    stack.count_duplicates(result)
    stack.count_drops(result)
    assert stack.watch is not None
    result.peak_outbox = int(stack.watch.peak_outbox)
    result.extra["restart_s"] = sum(downtimes) / len(downtimes)
    result.notes.append(f"gateway back {result.extra['restart_s']:.1f} s after each kill "
                        "(average, until subscribed)")
    return result


def _block_influx(stack: Stack) -> None:
    assert stack.proxy is not None
    stack.proxy.set_fault(drop="before", count=None)  # every write: connection reset


def outbox_truncated(stack: Stack, *, readings: int = 2000, rate: float = 1000,
                     keep: float = 0.5, timeout: float = 60.0) -> Result:
    """A backlog in the outbox, the gateway stopped, the file cut mid-record; restart."""
    result = Result(f"outbox of {readings:,} cut to {keep:.0%} while stopped")
    _block_influx(stack)
    stack.start_gateway()
    pub = stack.publisher(rate=rate).start()
    wait_until(lambda: pub.sent >= readings, timeout, "backlog published")
    pub.stop()
    pub.wait_delivered(timeout)
    assert stack.watch is not None
    wait_until(lambda: stack.metrics().get("outpost_outbox_readings", 0) >= len(pub.delivered()),
               timeout, "backlog in the outbox")
    stack.watch.sample()
    result.peak_outbox = int(stack.watch.peak_outbox)
    assert stack.gateway.stop() == 0
    path = Path(stack.state_dir) / "outbox.sqlite3"
    size = path.stat().st_size
    cut = int(size * keep) + 1234  # not on a page boundary: mid-record
    os.truncate(path, cut)
    result.extra["file"] = f"{size:,} B cut to {cut:,} B"
    assert stack.proxy is not None
    stack.proxy.clear()
    started = time.monotonic()
    stack.gateway.start()
    recovered, lost = _salvage_report(stack.gateway.log(this_run=True))
    result.extra |= {"recovered": recovered, "lost_reported": lost}
    # The gateway keeps working: new readings after the damage land as well.
    after = stack.publisher(device="rel-after", rate=rate).start()
    time.sleep(1.0)
    wait_until(lambda: stack.stored_count(pub.device) >= recovered, timeout,
               "recovered readings stored")
    result.recovery_s = time.monotonic() - started
    stack.settle(after, result, timeout)
    result.extra["after"] = {"delivered": result.delivered, "lost": result.lost}
    values = set(stack.stored_values(pub.device))
    delivered = pub.delivered()
    result.sent += pub.sent
    result.delivered += len(delivered)
    result.stored += len(values)
    result.extra["stored_backlog"] = len(values)
    result.extra["destroyed"] = len(delivered - values)
    stack.count_drops(result)
    # Lost = gone without being counted; what the cut destroyed is counted (dropped).
    result.lost += len(delivered - values) - result.dropped.get("outbox_damaged", 0)
    result.notes.append(f"salvage: {recovered:,} recovered, {lost:,} reported lost")
    return result


def _salvage_report(log: str) -> tuple[int, int]:
    match = re.search(r"recovered (\d+) readings, lost about (\d+)", log)
    if match is None:
        raise AssertionError(f"no salvage report in the gateway log:\n{log[-3000:]}")
    return int(match.group(1)), int(match.group(2))


def disk_full(stack: Stack, *, rate: float = 200, full_for: float = 6.0,
              timeout: float = 60.0) -> Result:
    """The state directory (a 2 MiB tmpfs) filled to the last byte while InfluxDB is down."""
    result = Result(f"state_dir full for {full_for:g} s (InfluxDB down meanwhile), "
                    f"at {rate:g}/s")
    _block_influx(stack)
    stack.start_gateway()
    pub = stack.publisher(rate=rate).start()
    time.sleep(1.0)
    ballast = Path(stack.state_dir) / "ballast"
    fill(ballast)
    time.sleep(full_for)
    assert stack.gateway.running(), stack.gateway.log()[-3000:]
    ballast.unlink()
    freed = time.monotonic()
    wait_until(lambda: stack.metrics().get("outpost_outbox_degraded", 1) == 0, timeout,
               "outbox back on disk")
    result.extra["back_on_disk_s"] = time.monotonic() - freed  # gauge: 1 s resolution
    assert stack.proxy is not None
    stack.proxy.clear()
    result.recovery_s = stack.wait_recovered(pub, pub.sent - 1, timeout)
    stack.settle(pub, result, timeout)
    assert stack.watch is not None
    result.peak_outbox = int(stack.watch.peak_outbox)
    result.extra["degraded_seen"] = stack.watch.peak_degraded
    stack.count_duplicates(result)
    stack.count_drops(result)
    return result


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)


def bad_point_in_batch(stack: Stack, *, size: int = 1000, how: str = "conflict",
                       timeout: float = 30.0) -> Result:
    """One point InfluxDB refuses among ``size`` in one batch.

    ``conflict``: a real influxd refusal (field type conflict: the measurement's ``value``
    was written as a string first). ``partial``: the FaultProxy answers influxd's
    "partial write" 400 for any request holding the bad line, after writing the others.
    """
    result = Result(f"1 bad point in a batch of {size:,} ({how})")
    bad_device = "legacy"
    if how == "conflict":
        stack.influx.write("reliability", f'temperature,device={bad_device} value="warm" '
                           f"{time.time_ns()}")
    else:
        assert stack.proxy is not None
        stack.proxy.set_fault(reject=f"device={bad_device}", partial=True, count=None)
    # QoS 0 subscription: a QoS 1 batch is also sealed when the stream pauses for 50 ms
    # (the writer's idle flush), which a loaded machine can cause; this one must be whole.
    stack.start_gateway(influx={"batch_size": size, "flush_interval": "30s"},
                        inputs=[{"topic": "sensors/{device}", "format": "json",
                                 "time_field": "ts", "qos": 0}])
    pub = SeqPublisher(stack.broker.port, device="batch", rate=0)
    stack.publishers.append(pub)
    base = time.time_ns()
    bad_at = size // 2
    for i in range(size):
        if i == bad_at:
            payload = json.dumps({"temperature": 21.5, "ts": base + i})
            pub.client.publish(f"sensors/{bad_device}", payload, qos=1)
        else:
            pub.client.publish("sensors/batch", json.dumps({"humidity": i, "ts": base + i}),
                               qos=1)
    result.sent = size
    wait_until(lambda: stack.metrics().get(
        'outpost_deadletters_total{reason="influx_rejected"}', 0) >= 1, timeout, "dead letter")
    answer = stack.influx.query("SELECT count(value) FROM humidity", "reliability")
    series = answer["results"][0].get("series") or []
    result.stored = int(series[0]["values"][0][1]) if series else 0
    result.delivered = size
    m = stack.metrics()
    result.dropped = {"influx_rejected": int(m.get(
        'outpost_deadletters_total{reason="influx_rejected"}', 0))}
    result.lost = size - 1 - result.stored
    assert stack.proxy is not None
    writes = stack.proxy.requests("/write")
    result.extra["requests"] = [(r["lines"], r["status"]) for r in writes]
    result.notes.append(f"{len(writes)} write requests to isolate it (first: "
                        f"{writes[0]['lines'] if writes else 0} lines)")
    return result


# --- bad inputs ---------------------------------------------------------------------------

BAD_INPUTS_CONFIG = [
    {"topic": "sensors/{device}/{metric}", "format": "value"},
    {"topic": "sensors/{device}", "format": "json", "time_field": "ts"},
    {"topic": "ingest/json", "format": "json", "device_field": "id"},
    {"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"},
    {"topic": "tele/{device}/SENSOR", "format": "tasmota"},
]

DEEP = b"[" * 30000 + b"]" * 30000  # 60,000 bytes: inside the 64 KiB max_payload
HUGE_INT = b"9" * 5000  # past Python's 4,300-digit int limit

# (topic, payload, dead-letter reason; None: a valid reading, stored and counted)
# Device ids with + # or NUL can only come from payloads: a broker refuses such a
# topic name outright (+ and # are wildcards; NUL is not allowed in MQTT strings).
BAD_INPUTS: list[tuple[str, bytes, str | None]] = [
    ("sensors/bad-1", b"\xff\xfe\x00garbage", "bad_utf8"),
    ("sensors/bad-1/temperature", b"\xc3\x28", "bad_utf8"),
    ("sensors/bad-1", DEEP, "too_deep"),
    ("tele/bad-1/SENSOR", DEEP, "too_deep"),  # conventions read JSON as the formats do
    ("zigbee2mqtt/bad-1", DEEP, "too_deep"),
    ("sensors/bad-1", b'{"n": ' + HUGE_INT + b"}", "bad_json"),
    ("sensors/bad-1/temperature", HUGE_INT, "non_finite"),
    ("zigbee2mqtt/bad-1", b'{"temperature": ' + HUGE_INT + b"}", "bad_json"),
    ("sensors/bad-1/temperature", b"NaN", "non_finite"),
    ("sensors/bad-1/temperature", b"Infinity", "non_finite"),
    ("sensors/bad-1/temperature", b"-1e999", "non_finite"),
    ("sensors/bad-1", b'{"t": NaN}', "non_finite"),
    ("sensors/bad-1", b'{"t": 1e999}', "non_finite"),
    ("tele/bad-1/SENSOR", b'{"AM2301": {"Temperature": Infinity}}', "non_finite"),
    ("ingest/json", b'{"id": "a+b", "t": 1}', "bad_device"),
    ("ingest/json", b'{"id": "a#b", "t": 1}', "bad_device"),
    ("ingest/json", b'{"id": "a/b", "t": 1}', "bad_device"),
    ("ingest/json", b'{"id": "a\\u0000b", "t": 1}', "bad_device"),
    ("sensors//temperature", b"20", "no_input"),  # an empty device level
    ("sensors/bad-1", b'{"t": "\\ud800"}', "invalid_text"),  # a lone surrogate
    ("zigbee2mqtt/bad-1", b'{"\\udfff": 1}', "invalid_text"),
    ("sensors/bad-1", b'{"a": [' + b"0," * 300 + b"0]}", "too_many_readings"),
    # A $ is harmless inside a device id (only a topic's first level is special): stored.
    ("ingest/json", b'{"id": "$dollar-1", "t": 1}', None),
    ("zigbee2mqtt/$dollar-2", b'{"temperature": 20.5}', None),
    ("tele/$dollar-3/SENSOR", b'{"AM2301": {"Temperature": 21.5}}', None),
]


class Flood:
    """Publishes ``items`` round-robin at ``rate``/s, QoS 1, from a thread of its own."""

    def __init__(self, port: int, items: list[tuple[str, bytes, str | None]], rate: float,
                 name: str) -> None:
        import paho.mqtt.client as mqtt

        self.items, self.rate = items, rate
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"rel-{name}-{os.getpid()}", protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.infos: list[object] = []
        self.reasons: dict[str | None, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Flood:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while n < due and not self._stop.is_set():
                topic, payload, reason = self.items[n % len(self.items)]
                self.infos.append(self.client.publish(topic, payload, qos=1))
                self.reasons[reason] = self.reasons.get(reason, 0) + 1
                n += 1
            self._stop.wait(0.005)

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(10)
        wait_until(lambda: all(i._published for i in self.infos), timeout,  # type: ignore[attr-defined]
                   "flood PUBACKs", step=0.05)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def sent(self) -> int:
        return len(self.infos)


def bad_inputs(stack: Stack, *, duration: float = 5.0, bad_rate: float = 1000,
               big_rate: float = 10, big_size: int = 10 * 1024**2, valid_rate: float = 100,
               timeout: float = 60.0) -> Result:
    """Garbage at ``bad_rate``/s and ``big_size`` payloads at ``big_rate``/s, valid readings
    interleaved; the gateway's RSS sampled (VmRSS) against its baseline after start."""
    result = Result(f"bad inputs {duration:g} s: {bad_rate:g}/s garbage + {big_rate:g}/s of "
                    f"{big_size / 1024**2:g} MiB")
    stack.start_gateway(inputs=BAD_INPUTS_CONFIG)
    time.sleep(1.0)
    baseline = stack.gateway.rss_bytes()
    before = stack.metrics()
    assert stack.watch is not None
    stack.watch.peak_rss = baseline
    t0 = time.monotonic()
    pub = stack.publisher(device="valid", rate=valid_rate).start()
    flood = Flood(stack.broker.port, BAD_INPUTS, bad_rate, "bad").start()
    big = Flood(stack.broker.port, [("sensors/big-1", b"x" * big_size, "too_large")], big_rate,
                "big").start()
    time.sleep(duration)
    phases = {}
    big.stop(timeout)
    phases["big_acked"] = time.monotonic() - t0
    flood.stop(timeout)
    phases["flood_acked"] = time.monotonic() - t0
    expected: dict[str, int] = {}
    for f in (flood, big):
        for reason, n in f.reasons.items():
            if reason is not None:
                expected[reason] = expected.get(reason, 0) + n
    letters = sum(expected.values())

    def all_lettered() -> bool:
        now = by_label(stack.metrics(), "outpost_deadletters_total", "reason")
        was = by_label(before, "outpost_deadletters_total", "reason")
        return sum(now.values()) - sum(was.values()) >= letters

    with contextlib.suppress(TimeoutError):
        wait_until(all_lettered, timeout, "every bad input dead-lettered", step=0.2)
    phases["lettered"] = time.monotonic() - t0
    stack.settle(pub, result, timeout)
    phases["settled"] = time.monotonic() - t0
    result.extra["phases"] = phases
    result.seconds = time.monotonic() - t0
    stack.watch.sample()
    after = stack.metrics()
    now = by_label(after, "outpost_deadletters_total", "reason")
    was = by_label(before, "outpost_deadletters_total", "reason")
    got = {r: int(now[r] - was.get(r, 0)) for r in now if now[r] - was.get(r, 0)}
    result.dropped = got
    result.sent += flood.sent + big.sent
    result.extra |= {
        "expected_letters": expected,
        "accepted_odd_ids": flood.reasons.get(None, 0),
        "rss_baseline_mib": baseline / 1024**2,
        "rss_peak_mib": stack.watch.peak_rss / 1024**2,
        "rss_growth_mib": (stack.watch.peak_rss - baseline) / 1024**2,
        "rss_end_mib": stack.gateway.rss_bytes() / 1024**2,
        "alive": stack.gateway.running(),
        "dollar_points": sum(stack.influx.count(DB_NAME, m) for m in ("t", "temperature")),
    }
    result.notes.append(f"RSS {baseline / 1024**2:.0f} MiB at start, peak "
                        f"{stack.watch.peak_rss / 1024**2:.0f} MiB (+"
                        f"{result.extra['rss_growth_mib']:.0f})")
    return result


# --- InfluxDB error answers ----------------------------------------------------------------


def influx_errors(stack: Stack, *, rate: float = 200, drops_for: float = 12.0,
                  timeout: float = 60.0) -> Result:
    """Each error answer of issue 6 item 3 in turn, under load, from the FaultProxy:
    413, 429 and 503 with ``Retry-After``, 401, dropped connections. Measures the gaps
    between the gateway's requests; every delivered reading must land in the end."""
    assert stack.proxy is not None
    proxy = stack.proxy
    result = Result(f"InfluxDB errors (413, 429, 503, 401, drops) at {rate:g}/s")
    stack.start_gateway()
    pub = stack.publisher(device="errors", rate=rate).start()
    time.sleep(1.0)

    def requests_after(mark: float) -> list[dict[str, object]]:
        return [r for r in proxy.requests("/write") if float(r["time"]) >= mark]  # type: ignore[arg-type]

    mark = time.time()
    proxy.set_fault(status=413, count=1, path="/write")
    time.sleep(1.5)
    log = requests_after(mark)
    result.notes.append("413: requests (lines, status) " + ", ".join(
        f"({r['lines']}, {r['status']})" for r in log[:3]))
    for status, retry_after in ((429, 3), (503, 2)):
        mark = time.time()
        proxy.set_fault(status=status, retry_after=retry_after, count=1, path="/write")
        time.sleep(retry_after + 2.0)
        log = requests_after(mark)
        at = next(i for i, r in enumerate(log) if r["status"] == status)
        gap = float(log[at + 1]["time"]) - float(log[at]["time"])  # type: ignore[arg-type]
        result.extra[f"gap_{status}"] = gap
        result.notes.append(f"{status} with Retry-After: {retry_after}: next request "
                            f"{gap:.2f} s later")
    mark = time.monotonic()
    proxy.set_fault(status=401, count=None, path="/write")
    time.sleep(3.0)
    kept = stack.metrics().get("outpost_outbox_readings", 0)
    proxy.clear()
    wait_until(lambda: stack.metrics().get("outpost_outbox_readings", 1) == 0, timeout,
               "outbox drained after 401")
    logged = "check the InfluxDB credentials" in stack.gateway.log()
    result.notes.append(f"401 for 3 s: {kept:.0f} readings kept in the outbox, credentials "
                        f"hint logged: {logged}; drained {time.monotonic() - mark - 3:.1f} s "
                        "after the fix")
    time.sleep(1.0)
    mark = time.time()
    proxy.set_fault(drop="before", count=None, path="/write")
    time.sleep(drops_for)
    proxy.clear()
    times = [float(r["time"]) for r in requests_after(mark)]  # type: ignore[arg-type]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    result.extra["drop_gaps"] = gaps
    result.notes.append(f"connection reset for {drops_for:g} s: gaps between attempts "
                        + ", ".join(f"{g:.2f}" for g in gaps) + " s")
    stack.settle(pub, result, timeout)
    stack.count_drops(result)
    assert stack.watch is not None
    result.peak_outbox = int(stack.watch.peak_outbox)
    return result
