"""Modbus benchmark: what polling costs the gateway, per reading.

    .venv/bin/python -m benchmarks.modbus [--seconds 30] [--registers 20] [--devices 1]

Starts its own Mosquitto and influxd (tests/services.py), a pymodbus TCP server in a
process of its own (``tests/modbus/simserver.py``) serving a register map of
``--registers`` uint16 registers, and the real ``outpost run`` polling them, each
register once a second, into InfluxDB. Three rows, one gateway each:

- ``idle``: the gateway with no Modbus device: its own housekeeping, the floor;
- ``spread``: the registers two addresses apart, so none can share a request: one
  request per register (``registers`` requests a second per device);
- ``merged``: the registers next to each other: one request per poll.

After a warm-up, over ``--seconds``: readings stored per second (counted in influxd by
their own timestamps), requests per second (the gateway's own counter), and the
gateway's CPU (utime + stime from /proc) — per reading, and per reading above the idle
row. The server's CPU is shown too: it is the device here, not the gateway's cost.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.procstat import cpu_seconds
from benchmarks.rig import REPO, Gateway, Rig
from tests.services import free_port

WARMUP = 4.0  # seconds of polling before the measured window


@dataclass
class Row:
    name: str
    seconds: float
    readings: int
    requests: float
    gateway_cpu: float
    server_cpu: float

    @property
    def per_second(self) -> float:
        return self.readings / self.seconds

    def cpu_per_reading_us(self, floor: float = 0.0) -> float:
        if not self.readings:
            return float("nan")
        return (self.gateway_cpu - floor) / self.readings * 1e6


def profile(path: Path, registers: int, gap: int) -> Path:
    lines = ["datasheet: benchmark map (uint16 registers)", "registers:"]
    lines += [f"  r{i:02d}: {{address: {i * gap}, table: input}}" for i in range(registers)]
    path.write_text("\n".join(lines) + "\n")
    return path


def server(map_path: Path, devices: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    units = [arg for unit in range(1, devices + 1) for arg in ("--unit", f"{unit}={map_path}")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.modbus.simserver", "--tcp", f"127.0.0.1:{port}", *units],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    if b"serving" not in proc.stdout.readline():
        raise RuntimeError("the Modbus server did not start")
    return proc, port


def requests_total(api: str) -> float:
    with urllib.request.urlopen(f"{api}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    answers = r'^outpost_modbus_requests_total\{[^}]*outcome="answers"[^}]*\} (\S+)$'
    return sum(float(v) for v in re.findall(answers, text, re.M))


def stored(rig: Rig, database: str, start_ns: int, end_ns: int) -> int:
    answer = rig.influx.query(
        f"SELECT count(value) FROM /^r[0-9]+$/ WHERE time >= {start_ns} AND time < {end_ns}",
        database,
    )
    return sum(
        int(values[0][1])
        for result in answer.get("results", [])
        for series in result.get("series", [])
        for values in [series["values"]]
    )


def run_row(rig: Rig, name: str, seconds: float, modbus: list[dict[str, object]],
            server_pid: int | None) -> Row:  # fmt: skip
    listen = f"127.0.0.1:{free_port()}"
    gateway = Gateway(rig, name, [{"topic": "sensors/{device}", "format": "json"}],
                      {"modbus": modbus, "http": {"listen": listen}})  # fmt: skip
    api = f"http://{listen}"
    with gateway.start():
        time.sleep(WARMUP)
        cpu0, server0 = cpu_seconds(gateway.pid), cpu_seconds(server_pid) if server_pid else 0.0
        requests0 = requests_total(api) if modbus else 0.0
        start = time.time_ns()
        time.sleep(seconds)
        end = time.time_ns()
        cpu = cpu_seconds(gateway.pid) - cpu0
        server_cpu = (cpu_seconds(server_pid) - server0) if server_pid else 0.0
        requests = (requests_total(api) - requests0) / seconds if modbus else 0.0
        time.sleep(1.5)  # the last batch reaches influxd (flush_interval 1 s)
    readings = stored(rig, gateway.database, start, end) if modbus else 0
    return Row(name, seconds, readings, requests, cpu, server_cpu)


def devices_config(port: int, devices: int) -> list[dict[str, object]]:
    return [{"device": f"bench-{unit}", "tcp": f"127.0.0.1:{port}", "unit_id": unit,
             "profile": "", "interval": "1s"} for unit in range(1, devices + 1)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.modbus", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per row")
    parser.add_argument("--registers", type=int, default=20, help="registers per device")
    parser.add_argument("--devices", type=int, default=1, help="devices (units) on the server")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="outpost-bench-modbus-"))
    workdir.chmod(0o700)
    rows: list[Row] = []
    with Rig(workdir) as rig:
        rows.append(run_row(rig, "idle", args.seconds, [], None))
        for name, gap in (("spread", 2), ("merged", 1)):
            map_path = profile(workdir / f"map-{name}.yaml", args.registers, gap)
            proc, port = server(map_path, args.devices)
            try:
                config = devices_config(port, args.devices)
                for entry in config:
                    entry["profile"] = str(map_path)
                rows.append(run_row(rig, name, args.seconds, config, proc.pid))
            finally:
                proc.terminate()
                proc.wait(10)
                assert proc.stdout is not None
                proc.stdout.close()
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    idle = rows[0]
    expected = args.registers * args.devices
    print(f"\n{args.devices} device(s) x {args.registers} registers, each read every 1 s "
          f"(expected {expected} readings/s); {args.seconds:g} s per row\n")  # fmt: skip
    print("| row | requests/s | readings/s stored | gateway CPU | CPU/reading | above idle "
          "| server CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        floor = idle.gateway_cpu / idle.seconds * row.seconds
        per = f"{row.cpu_per_reading_us():.0f} µs" if row.readings else "-"
        above = f"{row.cpu_per_reading_us(floor):.0f} µs" if row.readings else "-"
        print(f"| {row.name} | {row.requests:.1f} | {row.per_second:.1f} | "
              f"{row.gateway_cpu / row.seconds * 100:.2f} % | {per} | {above} | "
              f"{row.server_cpu / row.seconds * 100:.2f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
