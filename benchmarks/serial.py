"""Serial benchmark (issue 5): one emulated sensor on a pty, every line into InfluxDB.

    .venv/bin/python -m benchmarks.serial [--rates 2000,4000,6000] [--seconds 10]
                                          [--target 2000] [--bridge auto|gateway|process]

Starts its own Mosquitto and influxd (tests/services.py) and the real
``outpost run`` process, then, in one invocation:

(a) raw ceiling: the emulated sensor writes numbered lines to a pseudo-terminal
    as fast as it can and a bare reader process (pyserial, the bridge's own
    ``read(in_waiting)`` loop) only counts lines: what the pty itself carries;
(b) end to end, one step per rate: the sensor numbers its lines and paces them
    at the rate; the serial bridge publishes them (QoS 1) to Mosquitto, the
    gateway writes them to influxd. A step ends when influxd holds every number
    of the step, checked one by one (``SELECT value FROM seq``), or when nothing
    more arrives for 5 s. A missing number in a step at or below ``--target``
    (issue 5: 2,000 lines/s) fails the run; steps above it look for the ceiling
    (``max`` = unpaced: the pty is read far faster than MQTT takes the lines, so
    the bridge's bounded queue drops the oldest and those steps lose lines by design).

The bridge runs inside the gateway (its ``serial:`` list) with ``--bridge
gateway``, or as ``outpost device serial`` beside it with ``--bridge
process``; ``auto`` picks ``gateway`` once ``gateway/app.py`` runs
``DevicesRuntime``.

Figures per step: lines written per second (the pacing achieved); *sustained*
= lines / (first line written → last number stored), so it includes the final
flush; the largest backlog (written − stored, sampled twice a second) — a
backlog that stays bounded is a rate the chain keeps up with; CPU of the
gateway (and of the bridge process) per 10,000 lines. The ratio (b)/(a) is the
figure to compare across machines; absolute rates are this machine's.

Reuses the approach of an earlier throwaway script (``/tmp/bench_serial.py``:
``openpty`` + raw mode, a paced writer numbering its lines); that one stopped at
an MQTT subscriber, this one goes to InfluxDB through the real gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import tty
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho

from benchmarks import yamlout

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services import InfluxDB, InfluxError, Mosquitto, free_port, quote_string  # noqa: E402

STALL_S = 5.0
LINE = b'{"t": 21.5, "h": 40.0, "p": 1013.2, "seq": %d}\n'  # 47-50 bytes, like a BME280 board


# --- the emulated sensor ------------------------------------------------------------------


class PtySensor:
    """The device side of a pseudo-terminal; the bridge opens ``link`` (a udev-like name)."""

    def __init__(self, link: Path) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation before pyserial sets it
        self.link = link
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(os.ttyname(self._slave))

    def write_lines(self, first: int, rate: float | None, seconds: float,
                    written: list[int]) -> tuple[float, float]:  # fmt: skip
        """Write numbered lines from ``first`` for ``seconds`` (paced at ``rate`` per second,
        or as fast as the pty takes them); ``written[0]`` counts them as they go."""
        fd, start = self.master, time.monotonic()
        wall = time.time()
        seq, n = first, 0
        end = start + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if rate is not None:
                due = start + n / rate
                if due > now:
                    time.sleep(due - now)
            os.write(fd, LINE % seq)  # blocks while the pty is full: back-pressure
            seq += 1
            n += 1
            written[0] = n
        return wall, time.time()

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()


def raw_reader(path: str, count: int) -> None:
    """Child process: read ``count`` lines the way the bridge does, print the elapsed time."""
    import serial  # type: ignore[import-untyped]

    port = serial.Serial(path, 115200, timeout=0.1)
    print("ready", flush=True)
    lines, started = 0, 0.0
    while lines < count:
        data = port.read(max(1, port.in_waiting))
        if data and not started:
            started = time.time()
        lines += data.count(b"\n")
    print(f"{started} {time.time()}", flush=True)


def raw_ceiling(workdir: Path, count: int) -> float:
    sensor = PtySensor(workdir / "ttyRAW")
    reader = subprocess.Popen([sys.executable, "-m", "benchmarks.serial", "--raw-reader",
                               str(sensor.link), str(count)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        started = time.time()
        fd = sensor.master
        for seq in range(count):
            os.write(fd, LINE % seq)
        _first, last = map(float, reader.stdout.readline().split())
        reader.wait(30)
    finally:
        if reader.poll() is None:
            reader.kill()
        sensor.close()
    return count / (last - started)


# --- measuring ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_count(influx: InfluxDB, db: str, device: str, lo: int, hi: int) -> int:
    q = (f"SELECT count(value) FROM seq WHERE device = {quote_string(device)} "
         f"AND value >= {lo} AND value < {hi}")  # fmt: skip
    try:
        series = influx.query(q, db)["results"][0].get("series")
    except InfluxError:  # the gateway has not created the database yet
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def stored_numbers(influx: InfluxDB, db: str, device: str, lo: int, hi: int) -> list[int]:
    q = (f"SELECT value FROM seq WHERE device = {quote_string(device)} "
         f"AND value >= {lo} AND value < {hi}")  # fmt: skip
    series = influx.query(q, db)["results"][0].get("series") or []
    return [int(v[1]) for s in series for v in s["values"]]


@dataclass
class Step:
    label: str
    lines: int
    write_rate: float
    sustained: float
    max_backlog: int
    drain_s: float
    lost: int
    duplicates: int
    gateway_cpu: float  # seconds per 10,000 lines
    bridge_cpu: float | None


def run_step(label: str, rate: float | None, seconds: float, first: int, sensor: PtySensor,
             influx: InfluxDB, db: str, device: str, pids: dict[str, int]) -> Step:  # fmt: skip
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    written = [0]
    result: list[tuple[float, float]] = []
    writer = threading.Thread(
        target=lambda: result.append(sensor.write_lines(first, rate, seconds, written))
    )
    writer.start()
    max_backlog = 0
    while writer.is_alive():
        time.sleep(0.5)
        n = written[0]
        max_backlog = max(max_backlog, n - stored_count(influx, db, device, first, first + n))
    writer.join()
    (started, ended), lines = result[0], written[0]
    # Wait until every number is stored, or until nothing has arrived for STALL_S
    # (lines the bridge's queue dropped will never come).
    count, changed = -1, time.time()
    while time.time() - changed < STALL_S:
        now_count = stored_count(influx, db, device, first, first + lines)
        if now_count != count:
            count, changed = now_count, time.time()
        if count >= lines:
            break
        time.sleep(0.05)
    done = changed
    cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    numbers = stored_numbers(influx, db, device, first, first + lines)
    distinct = set(numbers)
    lost = lines - len(distinct)
    per_10k = {name: (cpu1[name] - cpu0[name]) / lines * 10_000 for name in pids}
    return Step(label, lines, lines / (ended - started), lines / (done - started), max_backlog,
                done - ended, lost, len(numbers) - len(distinct), per_10k["gateway"],
                per_10k.get("bridge"))  # fmt: skip


# --- the system under test -----------------------------------------------------------------


def wait_for_status(port: int, device: str, timeout: float = 30.0) -> None:
    got = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-w-{uuid.uuid4().hex}")
    client.on_message = lambda c, u, m: got.set() if m.payload == b"online" else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(f"devices/{device}/status", 1)
    try:
        if not got.wait(timeout):
            raise SystemExit(f"the bridge of {device} never said online")
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def system(mode: str, broker: Mosquitto, influx: InfluxDB, workdir: Path, sensor: PtySensor,
           db: str, device: str) -> Iterator[dict[str, int]]:  # fmt: skip
    config: dict[str, object] = {
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"bench-gw-{device}"},
        "influx": {"url": influx.url, "database": db, "flush_interval": "200ms"},
        "inputs": [{"topic": "sensors/{device}", "format": "json", "time_field": "ts"}],
        "rules": [],
        "http": {"listen": f"127.0.0.1:{free_port()}"},  # not 8080: something may run there
        "state_dir": str(workdir / "var"),
        "log_level": "info",
    }
    if mode == "gateway":
        config["serial"] = [{"port": str(sensor.link), "device": device, "profile": "bme280"}]
    path = workdir / "gateway.yaml"
    path.write_text(yamlout.dump(config, sort_keys=True))
    logs = [open(workdir / "gateway.log", "w")]  # noqa: SIM115 - closed below
    procs = {
        "gateway": subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(path)],
            cwd=REPO,
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        )
    }
    if mode == "process":
        logs.append(open(workdir / "bridge.log", "w"))  # noqa: SIM115
        procs["bridge"] = subprocess.Popen(
            [sys.executable, "-m", "gateway", "device", "serial", "--port", str(sensor.link),
             "--device", device, "--profile", "bme280", "--host", "127.0.0.1",
             "--port-mqtt", str(broker.port)],
            cwd=REPO, stdout=logs[1], stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.time() + 20
        while "connected to" not in (workdir / "gateway.log").read_text():
            if procs["gateway"].poll() is not None or time.time() > deadline:
                raise SystemExit(f"the gateway did not connect; see {workdir / 'gateway.log'}")
            time.sleep(0.05)
        wait_for_status(broker.port, device)
        yield {name: p.pid for name, p in procs.items()}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--raw-reader":
        raw_reader(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        default="2000,4000,6000",
        help="lines/s per step, comma-separated; 'max' = unpaced",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=2000.0,
        help="a step at or below this rate must lose nothing",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each step")
    parser.add_argument("--raw-count", type=int, default=200_000, help="lines for the ceiling")
    parser.add_argument("--bridge", choices=["auto", "gateway", "process"], default="auto")
    args = parser.parse_args()
    mode = args.bridge
    if mode == "auto":
        wired = "DevicesRuntime" in (REPO / "gateway" / "app.py").read_text()
        mode = "gateway" if wired else "process"
    rates = [None if r.strip() == "max" else float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="outpost-bench-serial-"))
    device, db = f"bench-{uuid.uuid4().hex[:6]}", "bench_serial"
    print(f"workdir {workdir}; bridge {'inside the gateway' if mode == 'gateway' else 'process'}",
          file=sys.stderr)  # fmt: skip
    raw = raw_ceiling(workdir, args.raw_count)
    print(f"raw pty ceiling: {raw:,.0f} lines/s", file=sys.stderr)
    steps: list[Step] = []
    sensor = PtySensor(workdir / "ttyBENCH")
    try:
        with Mosquitto() as broker, InfluxDB() as influx, \
                system(mode, broker, influx, workdir, sensor, db, device) as pids:  # fmt: skip
            first = 0
            for rate in rates:
                label = "max" if rate is None else f"{rate:,.0f}"
                step = run_step(label, rate, args.seconds, first, sensor, influx, db, device,
                                pids)  # fmt: skip
                steps.append(step)
                first += step.lines
                print(f"step {label}: {step}", file=sys.stderr)
    finally:
        sensor.close()
    bridge_col = mode == "process"
    print(
        f"Serial ingest, one pty port → bridge ({'inside the gateway' if mode == 'gateway' else 'separate process'}) "  # noqa: E501
        f"→ Mosquitto (QoS 1) → outpost run → influxd; {args.seconds:g} s per step.\n"
    )
    print(
        f"Raw pty read ceiling (unpaced writer → pyserial reader counting lines): "
        f"**{raw:,.0f} lines/s**\n"
    )
    head = [
        "paced at (lines/s)",
        "lines",
        "written/s",
        "sustained/s (to InfluxDB)",
        "÷ raw ceiling",
        "max backlog",
        "drain after last line",
        "lost",
        "duplicates",
        "kept up",
        "gateway CPU /10k lines",
    ] + (["bridge CPU /10k lines"] if bridge_col else [])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in steps:
        row = [s.label, f"{s.lines:,}", f"{s.write_rate:,.0f}", f"{s.sustained:,.0f}",
               f"{s.sustained / raw:.3f}", f"{s.max_backlog:,}", f"{s.drain_s:.2f} s",
               f"{s.lost:,}", str(s.duplicates), "yes" if kept_up(s) else "no",
               f"{s.gateway_cpu:.2f} s"]  # fmt: skip
        if bridge_col:
            row.append(f"{s.bridge_cpu:.2f} s" if s.bridge_cpu is not None else "-")
        print("| " + " | ".join(row) + " |")
    failed = [s for s, r in zip(steps, rates, strict=True) if s.lost and (r or 1e12) <= args.target]
    if failed:
        raise SystemExit(f"lines lost at or below {args.target:,.0f} lines/s: see the table")


def kept_up(step: Step) -> bool:
    """Nothing lost, and the chain caught up within 2 s of the last line."""
    return step.lost == 0 and step.drain_s < 2.0


if __name__ == "__main__":
    main()
