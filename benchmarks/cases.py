"""Gateway rows: the real ``outpost run`` from the first publish until influxd holds every
reading (counted with ``SELECT count(value)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import yamlout
from benchmarks.cpulimit import CpuLimit
from benchmarks.procstat import Watch
from benchmarks.publisher import JSON_FIELDS
from benchmarks.report import Row
from benchmarks.rig import Gateway, Rig

INPUTS = {
    "value": {"topic": "bench/{device}/{metric}", "format": "value"},
    "json": {"topic": "zigbee2mqtt/{device}", "format": "zigbee2mqtt"},
}
MEASUREMENTS = {"value": ("temperature",), "json": JSON_FIELDS}

# Every window function once, and an expression mixing a window with the value. The
# thresholds are out of reach: evaluation is measured, not alerting.
WINDOW_EXPRESSIONS = [
    "last(1m) > 1000",
    "avg(1m) > 1000",
    "max(5m) > 1000",
    "min(2m) < -1000",
    "rate(1m) > 1000",
    "count(1m) > 1000000",
    "abs(value - avg(5m)) > 1000",
    "delta(3m) > 1000",
    "stddev(5m) > 1000",
    "sum(1m) > 1e12",
]


def hundred_rules() -> str:
    """100 rules in 10 groups by the device id's last digit: each reading of
    ``bench-NNNN`` matches 10 of them, one of each expression above."""
    rules = [
        {
            "name": f"bench_{i:03d}",
            "match": {"metric": "temperature", "device": f"bench-???{i % 10}"},
            "when": f"{WINDOW_EXPRESSIONS[i // 10]} or value > {2000 + i}",
            "severity": "info",
        }
        for i in range(100)
    ]
    return yamlout.dump({"rules": rules}, sort_keys=False)


def write_rules(workdir: Path) -> Path:
    path = workdir / "hundred-rules.yaml"
    path.write_text(hundred_rules())
    return path


def throughput(
    rig: Rig,
    id: str,
    name: str,
    count: int,
    *,
    vs: str,
    kind: str = "value",
    qos: int = 0,
    extra: dict[str, Any] | None = None,
    limit: CpuLimit | None = None,
) -> Row:
    """``count`` messages as fast as the publisher goes; the gateway held to ``limit``
    (a CPU quota) once subscribed, when given."""
    per_message = len(MEASUREMENTS[kind])
    inputs = [{**INPUTS[kind], "qos": qos}]
    with Gateway(rig, id.lower(), inputs, extra or {}).start() as gateway:
        if limit is not None:
            limit.add(gateway.pid)
        watch = Watch(gateway.pid).start()
        sent = rig.publish(count, kind=kind, qos=qos)
        stored, seen = rig.wait_stored(gateway.database, MEASUREMENTS[kind], count * per_message)
        usage = watch.stop()
    messages = stored / per_message
    row = Row.measured(
        id,
        name,
        qos=qos,
        vs=vs,
        sent=sent,
        done=seen,
        messages=messages,
        usage=usage,
        lost=count * per_message - stored,
    )
    if per_message > 1:
        row.figures["readings_per_s"] = row.rate * per_message
        row.figures["cpu_per_10k_readings"] = row.cpu_per_10k / per_message
        row.notes = (
            f"{per_message} readings/msg: {row.figures['readings_per_s']:,.0f} readings/s, "
            f"{row.figures['cpu_per_10k_readings']:.2f} CPU s/10k readings"
        )
    return row
