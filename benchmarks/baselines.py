"""Baseline rows: subscribers that only count what the broker delivers.

``mosquitto_sub`` (C) and raw paho-mqtt 2.x (``benchmarks/counter.py``) over MQTT 3.1.1
or 5. Each is timed from the publisher's first write to its last message, like the
gateway rows to their last stored point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.cpulimit import CpuLimit
from benchmarks.procstat import Watch
from benchmarks.report import Row
from benchmarks.rig import REPO, STALL, Rig

TOPICS = {"value": "bench/#", "json": "zigbee2mqtt/#"}


def mosquitto_sub(rig: Rig, id: str, name: str, count: int, *, vs: str) -> Row:
    """``mosquitto_sub -C count``, timed until it exits. It prints one byte per message
    (``-F . -N``) to a file, so the file's size says how many arrived if some never do."""
    client_id = f"bench-{id}"
    out_path = rig.workdir / f"{id}.out"
    command = f"mosquitto_sub -h 127.0.0.1 -p {rig.port} -V mqttv311 -i {client_id} -q 0"
    command += f" -C {count} -F . -N -t {TOPICS['value']}"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(command.split(), stdout=out, stderr=subprocess.STDOUT)
    try:
        rig.wait_subscribed(client_id, 0, TOPICS["value"])
        watch = Watch(proc.pid).start()
        sent = rig.publish(count)
        ended = _wait_exit(proc.pid, out_path)
        usage = watch.stop()  # before reaping: a zombie still has its CPU times
    finally:
        proc.kill()
        proc.wait()
    received = out_path.stat().st_size
    return Row.measured(
        id,
        name,
        qos=0,
        vs=vs,
        sent=sent,
        done=ended,
        messages=received,
        usage=usage,
        lost=count - received,
    )


def _wait_exit(pid: int, progress: Path) -> float:
    """Wall-clock time the process exited (it is left unreaped), or when its output
    stopped growing for STALL s."""
    size, changed = -1, time.monotonic()
    while time.monotonic() - changed < STALL:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return time.time()
        if (now := progress.stat().st_size) != size:
            size, changed = now, time.monotonic()
        time.sleep(0.002)
    return time.time() - STALL


def paho(
    rig: Rig,
    id: str,
    name: str,
    count: int,
    *,
    vs: str,
    protocol: str = "311",
    qos: int = 0,
    kind: str = "value",
    limit: CpuLimit | None = None,
) -> Row:
    """The raw paho counter, optionally held to a CPU quota once subscribed."""
    command = [sys.executable, "-m", "benchmarks.counter", "--protocol", protocol]
    return counted(rig, id, name, count, command, vs=vs, qos=qos, kind=kind, limit=limit)


def counted(
    rig: Rig,
    id: str,
    name: str,
    count: int,
    command: list[str],
    *,
    vs: str,
    qos: int = 0,
    kind: str = "value",
    limit: CpuLimit | None = None,
) -> Row:
    """A counter process: ``command`` takes the options of benchmarks/counter.py
    (``--port --topic --count --client-id --qos --idle``) and prints what it prints."""
    client_id = f"bench-{id}"
    command = [*command, "--port", str(rig.port), "--topic", TOPICS[kind], "--count", str(count)]
    command += ["--client-id", client_id, "--qos", str(qos), "--idle", str(STALL)]
    proc = subprocess.Popen(
        command, cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        rig.wait_subscribed(client_id, qos, TOPICS[kind])
        if limit is not None:
            limit.add(proc.pid)
        watch = Watch(proc.pid).start()
        sent = rig.publish(count, kind=kind, qos=qos)
        result = json.loads(proc.stdout.readline())
        usage = watch.stop()
    finally:
        proc.stdin.close()
        if proc.wait(10) != 0:
            print(f"{id}: the counter exited with {proc.returncode}", file=sys.stderr)
    received = result["received"]
    return Row.measured(
        id,
        name,
        qos=qos,
        vs=vs,
        sent=sent,
        done=result["last"],
        messages=received,
        usage=usage,
        lost=count - received,
    )
