"""The fault-injection rig: real broker, real influxd behind a FaultProxy, the real gateway.

One :class:`Stack` per scenario, shared by the short tests (``tests/reliability/``) and the
long runs (``benchmarks/reliability.py``)::

    with Stack(workdir) as stack:          # mosquitto, influxd, faultproxy; nothing else yet
        stack.write_config()                # outpost.yaml for the gateway (overrides as kwargs)
        stack.gateway.start()               # python -m gateway run -c outpost.yaml
        pub = stack.publisher(rate=500)     # QoS 1 readings with a sequence number
        ...
        stack.stored_seqs()                 # what InfluxDB holds

The gateway writes to InfluxDB through the FaultProxy (``tests/faultproxy.py``), even when
no fault is set: its request log tells how many lines the gateway sent, so rewrites of a
point InfluxDB already had (duplicates, idempotent because readings carry timestamps)
are counted, not only inferred.

No pytest in here: the benchmark imports it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.faultproxy import FaultProxy
from tests.services import InfluxDB, InfluxError, Mosquitto, free_port, http_request

REPO = Path(__file__).resolve().parents[2]
DB = "reliability"
SEQ_METRIC = "seq"  # every sequenced reading is {"seq": n, "ts": ns}: measurement "seq"


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> float:
    """Poll ``check`` until true; returns the seconds it took, raises TimeoutError."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)
    return time.monotonic() - start


# --- the gateway process ------------------------------------------------------------------


class Gateway:
    """``python -m gateway run -c FILE``; every start appends to one log file."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.log_path = config_path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_from = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait_for: str | None = "connected to", timeout: float = 20.0) -> Gateway:
        assert not self.running()
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(self.config_path)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )
        self.starts += 1
        if wait_for:
            self.wait_log(wait_for, timeout)
        return self

    def log(self, *, this_run: bool = False) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[self._log_from if this_run else 0:].decode(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(this_run=True):
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"gateway exited {self.proc.returncode}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the gateway log after {timeout} s:\n"
                                     f"{self.log()[-4000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (power cut of the process)."""
        if self.running():
            assert self.proc is not None
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; a gateway that does not stop in time fails the caller."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"gateway did not stop in {timeout} s") from None
        return self.proc.returncode

    def rss_bytes(self) -> int:
        """VmRSS from /proc/PID/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


# --- metrics ------------------------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """``/metrics`` as ``{'name{label="v",…}': value}`` (labels sorted; counters as _total)."""
    status, _, body = http_request("GET", url, timeout=5.0)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def by_label(metrics: dict[str, float], name: str, label: str) -> dict[str, float]:
    """``{label value: sample}`` of one labelled family (e.g. deadletters by reason)."""
    prefix, out = f"{name}{{", {}
    for key, value in metrics.items():
        if key.startswith(prefix):
            for part in key[len(prefix):-1].split(","):
                k, _, v = part.partition("=")
                if k == label:
                    out[v.strip('"')] = value
    return out


class MetricsWatch:
    """Scrapes the gateway every ``interval`` s in a thread; keeps peaks and the last answer.

    Scrapes fail while the gateway is down (killed, restarting): they are skipped.
    """

    def __init__(self, url: str, interval: float = 0.25,
                 rss_of: Callable[[], int] | None = None) -> None:
        self.url = url
        self.interval = interval
        self.rss_of = rss_of
        self.peak_outbox = 0.0
        self.peak_degraded = 0.0
        self.peak_rss = 0
        self.last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-watch", daemon=True)

    def start(self) -> MetricsWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            if self.rss_of is not None:
                self.peak_rss = max(self.peak_rss, self.rss_of())
            m = scrape(self.url)
            self.last = m
            self.peak_outbox = max(self.peak_outbox, m.get("outpost_outbox_readings", 0.0))
            self.peak_degraded = max(self.peak_degraded, m.get("outpost_outbox_degraded", 0.0))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


# --- the publisher ------------------------------------------------------------------------


class SeqPublisher:
    """A device publishing ``{"seq": n, "ts": ns}`` at QoS 1 on ``sensors/{device}``, paced.

    "Delivered" means the broker answered PUBACK (paho's ``MQTTMessageInfo`` marks it).
    The client survives broker restarts: persistent session (clean session off, fixed
    client id) and paho resends every QoS 1 message without a PUBACK after reconnecting,
    so nothing it was handed is abandoned. Timestamps are the wall clock at publish time,
    made strictly increasing so that no two readings can share an InfluxDB point.
    """

    def __init__(self, port: int, *, device: str = "rel-1", rate: float = 500.0,
                 inflight: int = 1000) -> None:
        self.device = device
        self.topic = f"sensors/{device}"
        self.rate = rate
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"rel-pub-{device}-{uuid.uuid4().hex[:6]}",
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.ts: list[int] = []
        self._last_ts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def start(self) -> SeqPublisher:
        self._thread = threading.Thread(target=self._run, name=f"pub-{self.device}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while len(self.infos) < due and not self._stop.is_set():
                self.publish_one()
            self._stop.wait(0.01)

    def publish_one(self) -> int:
        with self._lock:
            seq = len(self.infos)
            ts = max(time.time_ns(), self._last_ts + 1)
            self._last_ts = ts
            payload = json.dumps({SEQ_METRIC: seq, "ts": ts})
            # While disconnected paho queues the message (rc NO_CONN) and sends it later.
            self.infos.append(self.client.publish(self.topic, payload, qos=1))
            self.ts.append(ts)
            return seq

    @property
    def sent(self) -> int:
        return len(self.infos)

    def delivered(self, upto: int | None = None) -> set[int]:
        infos = self.infos[: (upto + 1) if upto is not None else None]
        return {i for i, info in enumerate(infos) if _acked(info)}

    def stop(self) -> None:
        """Stop publishing new readings (already handed ones keep being retried)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def wait_delivered(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: all(_acked(i) for i in self.infos[-2000:]), timeout,
                       "PUBACKs", step=0.05)

    def close(self) -> None:
        self.stop()
        self.client.disconnect()
        self.client.loop_stop()


def _acked(info: mqtt.MQTTMessageInfo) -> bool:
    # Not is_published(): it raises for a message published while disconnected (rc
    # NO_CONN), although paho queued it and marks it published once the PUBACK comes.
    return bool(info._published)


# --- results ------------------------------------------------------------------------------


@dataclass
class Result:
    """One scenario run, as a row of RELIABILITY.md's table."""

    scenario: str
    sent: int = 0
    delivered: int = 0
    stored: int = 0
    duplicated: int = 0  # writes of a point InfluxDB already had (one point stored)
    lost: int = 0  # delivered (PUBACKed) readings missing from InfluxDB
    dropped: dict[str, int] = field(default_factory=dict)  # counted by the gateway, by reason
    peak_outbox: int = 0
    recovery_s: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> str:
        dropped = ", ".join(f"{k} {v:,}" for k, v in sorted(self.dropped.items())) or "0"
        recovery = "—" if self.recovery_s is None else f"{self.recovery_s:.1f} s"
        return (f"| {self.scenario} | {self.sent:,} | {self.delivered:,} | {self.stored:,} | "
                f"{self.duplicated:,} | {self.lost:,} | {dropped} | {self.peak_outbox:,} | "
                f"{recovery} |")


TABLE_HEADER = (
    "| scenario | sent | delivered (PUBACK) | stored | duplicated | lost | dropped (reason) "
    "| peak outbox | recovery |\n|---|---:|---:|---:|---:|---:|---|---:|---:|"
)


# --- the stack ----------------------------------------------------------------------------


class Stack:
    """Mosquitto + influxd + FaultProxy (+ the gateway, once configured), in ``workdir``."""

    def __init__(self, workdir: Path, *, broker_config: Iterable[str] = (),
                 state_dir: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker = Mosquitto(workdir=self.workdir / "mosquitto",
                                extra_config=list(broker_config))
        self.influx = InfluxDB(workdir=self.workdir / "influxd")
        self.proxy: FaultProxy | None = None
        self.state_dir = state_dir or self.workdir / "state"
        self.config_path = self.workdir / "outpost.yaml"
        self.gateway = Gateway(self.config_path)
        self.http_port = free_port()
        self.client_id = f"outpost-rel-{uuid.uuid4().hex[:6]}"
        self.publishers: list[SeqPublisher] = []
        self.watch: MetricsWatch | None = None

    def __enter__(self) -> Stack:
        try:
            self.broker.start()
            self.influx.start()
            self.influx.create_database(DB)
            self.proxy = FaultProxy(self.influx.url, workdir=self.workdir / "faultproxy")
            self.proxy.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        for pub in self.publishers:
            with contextlib.suppress(Exception):
                pub.close()
        if self.gateway.running():
            with contextlib.suppress(AssertionError):
                self.gateway.stop(timeout=15)
            self.gateway.kill()
        for svc in (self.proxy, self.influx, self.broker):
            if svc is not None:
                with contextlib.suppress(Exception):
                    svc.stop()

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/metrics"

    def write_config(self, **overrides: Any) -> Path:
        assert self.proxy is not None
        config: dict[str, Any] = {
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port, "client_id": self.client_id,
                     "keepalive": "10s", "reconnect_min": "1s", "reconnect_max": "2s"},
            "inputs": [{"topic": "sensors/{device}/{metric}", "format": "value"},
                       {"topic": "sensors/{device}", "format": "json", "time_field": "ts"}],
            "influx": {"url": self.proxy.url, "database": DB, "flush_interval": "200ms",
                       "timeout": "5s"},
            "http": {"listen": f"127.0.0.1:{self.http_port}"},
            "rules": [],
            "state_dir": str(self.state_dir),
            "log_level": "info",
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.config_path

    def start_gateway(self, **overrides: Any) -> Gateway:
        self.write_config(**overrides)
        self.gateway.start()
        self.watch = MetricsWatch(self.metrics_url, rss_of=self._rss).start()
        return self.gateway

    def _rss(self) -> int:
        return self.gateway.rss_bytes() if self.gateway.running() else 0

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_url)

    def publisher(self, *, device: str = "rel-1", rate: float = 500.0) -> SeqPublisher:
        pub = SeqPublisher(self.broker.port, device=device, rate=rate)
        self.publishers.append(pub)
        return pub

    # -- what InfluxDB holds

    def stored_values(self, device: str, *, upto_ts: int | None = None) -> list[int]:
        where = f"device = '{device}'" + (f" AND time <= {upto_ts}" if upto_ts else "")
        try:
            answer = self.influx.query(f"SELECT value FROM {SEQ_METRIC} WHERE {where}", DB)
        except InfluxError:
            return []
        series = answer["results"][0].get("series") or []
        return [int(v[1]) for s in series for v in s["values"]]

    def stored_count(self, device: str, *, upto_ts: int | None = None) -> int:
        where = f"device = '{device}'" + (f" AND time <= {upto_ts}" if upto_ts else "")
        try:
            answer = self.influx.query(f"SELECT count(value) FROM {SEQ_METRIC} WHERE {where}", DB)
        except (InfluxError, OSError):
            return -1
        series = answer["results"][0].get("series") or []
        return int(series[0]["values"][0][1]) if series else 0

    def lines_written(self, measurement: str = SEQ_METRIC) -> int:
        """Lines of /write requests InfluxDB answered 2xx for (through the proxy).

        Counts every line of such a request: the scenarios that use this send one
        measurement only.
        """
        assert self.proxy is not None
        return sum(r["lines"] for r in self.proxy.requests("/write")
                   if r["status"] is not None and 200 <= r["status"] < 300)

    def wait_recovered(self, pub: SeqPublisher, upto: int, timeout: float) -> float:
        """Seconds until every reading ``pub`` delivered up to seq ``upto`` is stored."""
        ts = pub.ts[upto]

        def caught_up() -> bool:
            return self.stored_count(pub.device, upto_ts=ts) >= len(pub.delivered(upto))

        return wait_until(caught_up, timeout, f"readings up to seq {upto} stored", step=0.1)

    def wait_flowing(self, pub: SeqPublisher, after: int, timeout: float) -> float:
        """Seconds until a reading ``pub`` published after seq ``after`` is stored."""
        while pub.sent <= after + 1:
            time.sleep(0.01)
        ts = pub.ts[after]
        return wait_until(lambda: self.stored_count(pub.device) >
                          self.stored_count(pub.device, upto_ts=ts), timeout,
                          "new readings flowing", step=0.1)

    def settle(self, pub: SeqPublisher, result: Result, timeout: float) -> None:
        """Stop ``pub``, wait for its PUBACKs and for InfluxDB to hold them; fill ``result``."""
        pub.stop()
        pub.wait_delivered(timeout)
        delivered = pub.delivered()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.stored_count(pub.device) >= len(delivered), timeout,
                       "every delivered reading stored", step=0.2)
        values = self.stored_values(pub.device)
        stored = set(values)
        result.sent += pub.sent
        result.delivered += len(delivered)
        result.stored += len(stored)
        result.lost += len(delivered - stored)
        result.extra.setdefault("duplicate_points", 0)
        result.extra["duplicate_points"] += len(values) - len(stored)  # must stay 0
        result.extra.setdefault("missing_seqs", [])
        result.extra["missing_seqs"] += sorted(delivered - stored)[:20]

    def count_duplicates(self, result: Result) -> None:
        result.duplicated = max(0, self.lines_written() - result.stored)

    def count_drops(self, result: Result, metrics: dict[str, float] | None = None) -> None:
        m = metrics if metrics is not None else self.metrics()
        for reason, n in by_label(m, "outpost_dropped_total", "reason").items():
            if n:
                result.dropped[reason] = result.dropped.get(reason, 0) + int(n)


def seeded(seed: int | None) -> random.Random:
    return random.Random(seed if seed is not None else int.from_bytes(os.urandom(4), "big"))
