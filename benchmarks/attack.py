"""Attack soak: hostile messages at a high rate while honest devices keep publishing.

    .venv/bin/python -m benchmarks.attack [--seconds 60] [--attack-rate 1000]
                                          [--honest-rate 100] [--json FILE]

Starts its own Mosquitto and influxd (tests/services.py) and the real ``outpost run``.
One publisher replays :data:`CORPUS` (every kind of bad input the gateway must refuse:
poison text, deep and huge JSON, forged and oversized device ids, line protocol that
speaks for another device, non-UTF-8, non-finite numbers, oversized payloads…) at
``--attack-rate`` messages/s, QoS 0; ten honest devices publish numbered QoS 1
readings at ``--honest-rate`` in all. At the end it reports whether the gateway is
still up, how many honest readings InfluxDB holds (every one must be there), the
gateway's RSS after the first seconds and at the end, and the refusals by reason from
``/metrics`` next to the number of hostile messages sent. Exit status 1 when the
gateway died, an honest reading is missing, or a hostile message was stored or left
uncounted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import yamlout

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services import InfluxDB, Mosquitto, free_port  # noqa: E402

HONEST_DEVICES = 10
HONEST_INPUT = "honest/{device}/{metric}"
ATTACK_INPUTS = (
    {"topic": "sensors/{device}/{metric}", "format": "value", "qos": 0},
    {"topic": "json/{device}", "format": "json", "qos": 0},
    {"topic": "lp/{device}", "format": "influx", "qos": 0},
)
# A rule whose device glob would backtrack on long ids with a naive matcher.
RULES = """\
rules:
  - name: glob-heavy
    match: {device: "*a*a*a*a*a*b", metric: temperature}
    when: value > 1000
"""

LONG = "a" * 4000
CORPUS: dict[str, tuple[str, bytes]] = {
    "surrogate_value": ("json/gh-x", b'{"t": "\\ud800"}'),
    "surrogate_key": ("json/gh-x", b'{"\\ud800": 1}'),
    "surrogate_lp_tag": ("lp/gh-x", b"temperature,zone=\xed\xa0\x80 value=1"),  # U+D800 as bytes
    "deep_json": ("json/gh-x", b"[" * 5000 + b"]" * 5000),
    "deep_object": ("json/gh-x", b'{"a":' * 3000 + b"1" + b"}" * 3000),
    "many_fields": ("json/gh-x", json.dumps({f"f{i}": i for i in range(5000)}).encode()),
    "big_array": ("json/gh-x", json.dumps({"a": list(range(20000))}).encode()),
    "long_device": (f"sensors/{LONG}/temperature", b"1"),
    "control_metric": ("json/gh-x", b'{"t\\u001b[31m\\n2026-01-01 INFO forged": 1}'),
    "other_device_lp": ("lp/gh-x", b"temperature,device=honest-0 value=99"),
    "topic_device_lp": ("lp/gh-x", b"temperature,device=fan-1/set value=1"),
    "wildcard_device_lp": ("lp/gh-x", b"temperature,device=# value=1"),
    "bad_escape_lp": ("lp/gh-x", b'temp\\ erature,zo\\=ne=a\\ value="x'),
    "not_utf8": ("sensors/gh-x/temperature", b"\xff\xfe\xfd"),
    "nan": ("sensors/gh-x/temperature", b"NaN"),
    "huge_number": ("sensors/gh-x/temperature", b"1e999"),
    "huge_int": ("json/gh-x", b'{"t": ' + b"9" * 5000 + b"}"),
    "oversized": ("sensors/gh-x/temperature", b"1" * 300_000),
    "empty": ("sensors/gh-x/temperature", b""),
    "garbage": ("json/gh-x", bytes(range(256)) * 4),
}


# Valid readings that stress the rules' device glob (128 characters, the longest id
# allowed): stored, not refused. (A control character in a topic is not in the corpus:
# Mosquitto itself disconnects a client that publishes one.)
GLOB_STRESS = (f"sensors/{'a' * 127}c/temperature", b"1")


@dataclass
class Result:
    seconds: float
    attack_sent: int = 0
    attack_counted: int = 0
    attack_stored: int = 0
    stress_sent: int = 0
    honest_sent: int = 0
    honest_stored: int = 0
    gateway_up: bool = False
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    refusals: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.gateway_up
            and self.honest_stored == self.honest_sent
            and self.attack_stored == 0
            and self.attack_counted == self.attack_sent - self.stress_sent
        )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(listen: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.time_ns()}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _paced(rate: float, seconds: float, send: callable) -> int:  # type: ignore[valid-type]
    """Call ``send(i)`` ``rate`` times a second for ``seconds``; returns how many were sent."""
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            send(sent)
            sent += 1
        time.sleep(0.002)
    return sent


def attacker(port: int, rate: float, seconds: float, out: Result) -> None:
    client = _client(port, "attacker")
    corpus = [*CORPUS.values(), GLOB_STRESS]

    def send(i: int) -> None:
        topic, payload = corpus[i % len(corpus)]
        client.publish(topic, payload, qos=0)
        if topic == GLOB_STRESS[0]:
            out.stress_sent += 1

    out.attack_sent = _paced(rate, seconds, send)
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()


def honest(port: int, rate: float, seconds: float, out: Result) -> None:
    client = _client(port, "honest")
    pending = []

    def send(i: int) -> None:
        device = f"honest-{i % HONEST_DEVICES}"
        pending.append(client.publish(f"honest/{device}/seq", str(i), qos=1))

    out.honest_sent = _paced(rate, seconds, send)
    for info in pending:
        info.wait_for_publish(timeout=30)
    client.disconnect()
    client.loop_stop()


def stored(influx: InfluxDB, db: str, measurement: str, where: str) -> int:
    body = influx.query(f'SELECT count(*) FROM "{measurement}" WHERE {where}', db=db)
    series = body["results"][0].get("series") or []
    return int(max(series[0]["values"][0][1:], default=0)) if series else 0


def total_stored(influx: InfluxDB, db: str) -> int:
    where = "device !~ /^honest-/ AND device !~ /^a+c$/"  # honest, and GLOB_STRESS
    body = influx.query(f"SELECT count(*) FROM /.*/ WHERE {where}", db=db)
    series = body["results"][0].get("series") or []
    return sum(int(max(s["values"][0][1:], default=0)) for s in series)


def run(seconds: float, attack_rate: float, honest_rate: float, workdir: Path) -> Result:
    result = Result(seconds=seconds)
    db = "attack"
    listen = f"127.0.0.1:{free_port()}"
    with Mosquitto() as broker, InfluxDB() as influx:
        influx.create_database(db)
        inputs = [{"topic": HONEST_INPUT, "format": "value", "qos": 1}, *ATTACK_INPUTS]
        (workdir / "rules.yaml").write_text(RULES)
        config = {
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "attack-gw"},
            "influx": {"url": influx.url, "database": db, "flush_interval": "200ms"},
            "inputs": inputs,
            "rules": [str(workdir / "rules.yaml")],
            "state_dir": str(workdir / "var"),
            "http": {"listen": listen},
            "log_level": "warning",
        }
        path = workdir / "outpost.yaml"
        path.write_text(yamlout.dump(config, sort_keys=False))
        with open(workdir / "gateway.log", "wb") as log:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(path)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_ready(listen, gateway)
                threads = [
                    threading.Thread(
                        target=attacker, args=(broker.port, attack_rate, seconds, result)
                    ),
                    threading.Thread(
                        target=honest, args=(broker.port, honest_rate, seconds, result)
                    ),
                ]
                for t in threads:
                    t.start()
                time.sleep(min(5.0, seconds / 4))
                result.rss_start_mb = rss_mb(gateway.pid)
                for t in threads:
                    t.join()
                _settle(influx, db, listen, result)
                result.gateway_up = gateway.poll() is None
                if result.gateway_up:
                    result.rss_end_mb = rss_mb(gateway.pid)
                    _count_refusals(scrape(listen), result)
                result.attack_stored = total_stored(influx, db)
            finally:
                gateway.terminate()
                gateway.wait(30)
    return result


def _wait_ready(listen: str, gateway: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if gateway.poll() is not None:
            raise SystemExit("the gateway exited at start; see gateway.log")
        try:
            with urllib.request.urlopen(f"http://{listen}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the gateway was not ready in 30 s")


def _settle(influx: InfluxDB, db: str, listen: str, result: Result) -> None:
    """Wait until every honest reading is stored (or 30 s pass)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result.honest_stored = stored(influx, db, "seq", "device =~ /^honest-/")
        if result.honest_stored >= result.honest_sent:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # the last hostile messages reach their counters


def _count_refusals(samples: dict, result: Result) -> None:  # type: ignore[type-arg]
    """Hostile messages the gateway counted: refused (by reason), dropped, unmatched."""
    refused: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == "outpost_deadletters_total" and value:
            refused[dict(labels)["reason"]] = value
    result.refusals = dict(sorted(refused.items()))
    attack_topics = {i["topic"] for i in ATTACK_INPUTS} | {""}
    counted = 0.0
    for (name, labels), value in samples.items():
        tags = dict(labels)
        hostile = tags.get("input") in attack_topics and tags.get("outcome") != "decoded"
        if name == "outpost_messages_total" and hostile:
            counted += value
    dropped = samples.get(("outpost_dropped_total", (("reason", "queue_full"),)), 0.0)
    result.attack_counted = int(counted + dropped)


def report(result: Result) -> str:
    lines = [
        f"attack soak, {result.seconds:.0f} s",
        f"  gateway up at the end:   {'yes' if result.gateway_up else 'NO'}",
        f"  honest readings stored:  {result.honest_stored} of {result.honest_sent}",
        f"  hostile messages sent:   {result.attack_sent}; counted as refused or dropped: "
        f"{result.attack_counted}; stored: {result.attack_stored} (and {result.stress_sent} "
        "valid glob-stress readings)",
        f"  RSS: {result.rss_start_mb:.1f} MB after warm-up, {result.rss_end_mb:.1f} MB at "
        f"the end (+{result.rss_end_mb - result.rss_start_mb:.1f} MB)",
        "  refusals by reason: "
        + ", ".join(f"{reason} {int(n)}" for reason, n in result.refusals.items()),
        f"  verdict: {'OK' if result.ok else 'FAILED'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--attack-rate", type=float, default=1000.0)
    parser.add_argument("--honest-rate", type=float, default=100.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="outpost-attack-") as tmp:
        result = run(args.seconds, args.attack_rate, args.honest_rate, Path(tmp))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps({**asdict(result), "ok": result.ok}, indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
