"""The bench's stage: one Mosquitto and one influxd for every row, the publisher, the gateway.

Readiness is read from the broker: Mosquitto logs each subscription (``log_type
subscribe``: ``<client id> <qos> <filter>``), and a publish that comes after that line
reaches the subscriber. No row starts its publisher on a guess.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import yamlout
from tests.services import InfluxDB, InfluxError, Mosquitto, free_port

REPO = Path(__file__).resolve().parents[1]
STALL = 15.0  # s without progress before a run is declared finished with losses


class Rig:
    """A fresh broker and influxd, started by ``with Rig(workdir) as rig``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        # The broker queues everything for a slow subscriber instead of dropping QoS 0
        # (max_queued_* 0 = no limit); autosave at Mosquitto's default, not the tests' 1 s.
        self.broker = Mosquitto(
            max_queued_messages=0, autosave_interval=1800, extra_config=["log_type subscribe"]
        )
        self.influx = InfluxDB()

    def __enter__(self) -> Rig:
        self.broker.__enter__()
        try:
            self.influx.__enter__()
        except BaseException:
            self.broker.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.influx.close()
        self.broker.close()

    @property
    def port(self) -> int:
        return self.broker.port

    def wait_subscribed(self, client_id: str, qos: int, topic_filter: str) -> None:
        """Wait for the broker's log line ``<client_id> <qos> <topic_filter>``."""
        wanted = f": {client_id} {qos} {topic_filter}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = self.broker.log_path.read_text(errors="replace").splitlines()
            if any(line.endswith(wanted) for line in lines):
                return
            time.sleep(0.02)
        raise RuntimeError(f"{client_id} did not subscribe to {topic_filter} within 30 s")

    def publish(self, count: int, **options: Any) -> dict[str, Any]:
        """Run the publisher to the end; its JSON report (see benchmarks/publisher.py)."""
        command = [sys.executable, "-m", "benchmarks.publisher", "--port", str(self.port)]
        command += ["--count", str(count)]
        for key, value in options.items():
            if value is True:
                command.append(f"--{key}")
            elif value is not None and value is not False:
                command += [f"--{key}", str(value)]
        out = subprocess.run(command, cwd=REPO, text=True, capture_output=True, check=True)
        report: dict[str, Any] = json.loads(out.stdout)
        return report

    def stored(self, db: str, measurements: tuple[str, ...]) -> int:
        """Points with a ``value`` field in these measurements (0 before the database exists)."""
        sources = ", ".join(f'"{m}"' for m in measurements)
        try:
            answer = self.influx.query(f"SELECT count(value) FROM {sources}", db)
        except InfluxError as exc:
            if "database not found" in str(exc):
                return 0
            raise
        return sum(s["values"][0][1] for s in answer["results"][0].get("series", []))

    def wait_stored(
        self, db: str, measurements: tuple[str, ...], expected: int
    ) -> tuple[int, float]:
        """Poll until ``expected`` points are stored or the count stalls for STALL s:
        (points stored, wall-clock time that count was first seen)."""
        n, seen, changed = 0, time.time(), time.monotonic()
        while n < expected and time.monotonic() - changed < STALL:
            time.sleep(0.05)
            now = self.stored(db, measurements)
            if now != n:
                n, seen, changed = now, time.time(), time.monotonic()
        return n, seen


@dataclass
class Gateway:
    """The real ``outpost run`` on the rig, with its own database and client id."""

    rig: Rig
    name: str
    inputs: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def client_id(self) -> str:
        return f"bench-gw-{self.name}"

    @property
    def database(self) -> str:
        return f"bench_{self.name}"

    def config(self) -> dict[str, Any]:
        return {
            # session_expiry 0: the broker forgets this gateway when it stops, so no
            # later row pays for a session queueing messages nobody will read.
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.rig.port,
                "client_id": self.client_id,
                "session_expiry": "0s",
            },
            "influx": {"url": self.rig.influx.url, "database": self.database},
            "inputs": self.inputs,
            "rules": [],
            "state_dir": str(self.rig.workdir / self.name),
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "log_level": "warning",
            **self.extra,
        }

    def start(self, wait_for: tuple[tuple[str, str], ...] = ()) -> Gateway:
        """Start; return once the broker logged the input subscriptions and those of
        ``wait_for`` ((client id suffix, filter) at QoS 1, e.g. the command link's)."""
        path = self.rig.workdir / f"{self.name}.yaml"
        path.write_text(yamlout.dump(self.config(), sort_keys=False))
        self.log_path = path.with_suffix(".log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(path)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wanted = [
            (self.client_id, i.get("qos", 1), subscription_filter(i["topic"])) for i in self.inputs
        ]
        wanted += [(self.client_id + suffix, 1, filter_) for suffix, filter_ in wait_for]
        try:
            for client_id, qos, filter_ in wanted:
                self.rig.wait_subscribed(client_id, qos, filter_)
        except RuntimeError:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name}: gateway not ready; its log ends:\n{tail}") from None
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def subscription_filter(template: str) -> str:
    """The MQTT filter the gateway subscribes for a topic template: ``{name}`` → ``+``."""
    return "/".join("+" if level.startswith("{") else level for level in template.split("/"))
