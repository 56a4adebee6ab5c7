"""Dashboard benchmark: what the live page and its API cost the gateway at 1,000 readings/s.

    .venv/bin/python -m benchmarks.dashboard [--rate 1000] [--seconds 20] [--rounds 3]

Starts its own Mosquitto and influxd (tests/services.py), then alternates, in one
invocation and with the same paced QoS 0 publisher (``--rate`` readings/s over
``--devices`` devices × 4 metrics):

(a) without: ``outpost run`` with ``http.dashboard: false`` (no live view, no page,
    no stream) and nobody looking;
(b) with: the default gateway, and headless Chromium (Debian's) showing the dashboard
    for the whole run — the live observer on every reading, the 0.5 s diffs, the
    browser's requests.

Measured: the gateway process's CPU (user + system, /proc) over the steady part of each
run (after ``WARMUP`` s), as a percentage of one core. The figure that matters is the
overhead (b − a) / a from the medians; it must stay ≤ 10 %. Exit 1 when it does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from benchmarks import yamlout

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services import InfluxDB, Mosquitto, free_port, http_request  # noqa: E402

WARMUP = 4.0
METRICS = ("temperature", "humidity", "pressure", "battery")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Publisher(threading.Thread):
    """``rate`` readings/s, paced in 10 ms slices, until stopped."""

    def __init__(self, port: int, rate: int, devices: int) -> None:
        super().__init__(daemon=True)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"dash-bench-{time.time_ns()}"
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.topics = [f"sensors/dash-{d:03d}/{m}" for d in range(devices) for m in METRICS]
        self.rate = rate
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        n = len(self.topics)
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                i = self.sent
                self.client.publish(self.topics[i % n], f"{20 + (i % 997) / 100:.2f}", qos=0)
                self.sent += 1
            time.sleep(0.01)
        self.client.loop_stop()
        self.client.disconnect()


def ready(url: str) -> bool:
    try:
        return http_request("GET", url, timeout=1)[0] == 200
    except OSError:  # not listening yet
        return False


def one_run(
    workdir: Path,
    broker: Mosquitto,
    influx: InfluxDB,
    *,
    dashboard: bool,
    rate: int,
    seconds: float,
    devices: int,
    browser: object | None,
) -> float:
    port = free_port()
    db = f"dash_{time.time_ns()}"
    config = {
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"dash-gw-{db}"},
        "influx": {"url": influx.url, "database": db},
        "inputs": [{"topic": "sensors/{device}/{metric}", "format": "value", "qos": 0}],
        "http": {"listen": f"127.0.0.1:{port}", "dashboard": dashboard},
        "rules": [],
        "state_dir": str(workdir / db),
        "log_level": "warning",
    }
    path = workdir / f"{db}.yaml"
    path.write_text(yamlout.dump(config, sort_keys=True))
    log = open(workdir / f"{db}.log", "wb")  # noqa: SIM115 - closed below
    gw = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(path)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    page = None
    try:
        deadline = time.monotonic() + 20
        while not ready(f"http://127.0.0.1:{port}/readyz"):
            if time.monotonic() > deadline or gw.poll() is not None:
                log_text = (workdir / f"{db}.log").read_text()
                raise SystemExit(f"gateway did not get ready:\n{log_text}")
            time.sleep(0.1)
        publisher = Publisher(broker.port, rate, devices)
        publisher.start()
        if dashboard and browser is not None:
            page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
            page.goto(f"http://127.0.0.1:{port}/")
        time.sleep(WARMUP)
        cpu0, t0 = cpu_seconds(gw.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(gw.pid), time.monotonic()
        if page is not None:
            live = page.locator("#conn").text_content()
            rows = page.locator("#readings tbody tr").count()
            if live != "live" or rows < min(50, devices * len(METRICS)):
                raise SystemExit(f"the dashboard was not showing live readings ({live}, {rows})")
            page.close()
        publisher.stop.set()
        publisher.join()
        return 100.0 * (cpu1 - cpu0) / (t1 - t0)
    finally:
        gw.terminate()
        gw.wait(30)
        log.close()
        influx.drop_database(db)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="readings per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs (without, with)")
    parser.add_argument("--devices", type=int, default=50, help="devices (4 metrics each)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {"without": [], "with": []}
    with (
        tempfile.TemporaryDirectory(prefix="outpost-dash-bench-") as tmp,
        Mosquitto() as broker,
        InfluxDB() as influx,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        for round_no in range(args.rounds):
            for mode in ("without", "with") if round_no % 2 == 0 else ("with", "without"):
                cpu = one_run(
                    Path(tmp),
                    broker,
                    influx,
                    dashboard=mode == "with",
                    rate=args.rate,
                    seconds=args.seconds,
                    devices=args.devices,
                    browser=browser,
                )
                results[mode].append(cpu)
                print(
                    f"round {round_no + 1}: {mode:<7} dashboard: gateway CPU {cpu:5.1f} %",
                    flush=True,
                )
        browser.close()
    without, with_ = statistics.median(results["without"]), statistics.median(results["with"])
    overhead = (with_ - without) / without * 100
    print(
        f"\n{args.rate} readings/s, {args.devices} devices × {len(METRICS)} metrics, "
        f"{args.seconds:.0f} s measured per run, {args.rounds} rounds (interleaved)"
    )
    print(
        f"gateway CPU, median: without dashboard {without:.1f} %, with dashboard and one "
        f"browser {with_:.1f} % of one core"
    )
    print(f"overhead: {overhead:+.1f} % (limit +10 %)")
    return 0 if overhead <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
