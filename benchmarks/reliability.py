"""Fault-injection benchmark: the long form of ``tests/reliability/`` (figures in RELIABILITY.md).

    .venv/bin/python -m benchmarks.reliability [--scenario NAME ...] [--long] [--seed S]

Each scenario starts its own Mosquitto, influxd and FaultProxy (tests/services.py,
tests/faultproxy.py) and the real ``outpost run`` process, injects its fault, and prints
one row: readings sent, delivered (PUBACK received by the publisher), stored (distinct
readings in InfluxDB), duplicated (lines InfluxDB was sent again for a reading it already
had: one point, since readings carry their own timestamps), lost (delivered and not
stored, and not counted as dropped — must be 0), dropped by the gateway with the reason
(``outpost_dropped_total`` / ``outpost_deadletters_total``), the outbox's peak
(``outpost_outbox_readings`` scraped from ``/metrics``), and the recovery time.

Without ``--long`` the sizes are the test suite's (a smoke run). Any lost reading makes the
exit status 1. Scenarios: ``influx_outage``, ``broker_restart``, ``broker_kill`` (SIGKILL
while the gateway keeps up), ``broker_kill_backlog`` (SIGKILL while the broker holds a
backlog for the stopped gateway: measures the loss ``autosave_interval`` bounds; its
losses do not fail the run), ``gateway_kills``,
``outbox_truncated``, ``disk_full`` (needs root for a tmpfs), ``bad_point``,
``bad_inputs``, ``influx_errors`` (413, 429/503 with Retry-After, 401, dropped
connections in turn: the gaps between requests are in the notes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.reliability import scenarios  # noqa: E402
from tests.reliability.rig import TABLE_HEADER, Result, Stack  # noqa: E402

Run = Callable[[Path, bool, int | None], list[Result]]


def influx_outage(work: Path, long: bool, seed: int | None) -> list[Result]:
    with Stack(work) as stack:
        r = scenarios.influx_outage(
            stack,
            rate=500,
            before=5 if long else 1.5,
            outage=60 if long else 5,
            after=5 if long else 1,
            timeout=180,
        )
    r.notes.append(f"outbox empty {r.extra['outbox_empty_s']:.1f} s after influxd was back")
    return [r]


def broker_restart(work: Path, long: bool, seed: int | None, hard: bool = False) -> list[Result]:
    with Stack(work) as stack:
        r = scenarios.broker_restart(
            stack,
            rate=500,
            before=10 if long else 1.5,
            down=10 if long else 2,
            after=10 if long else 1,
            hard=hard,
            timeout=120,
        )
    return [r]


def broker_kill(work: Path, long: bool, seed: int | None) -> list[Result]:
    return broker_restart(work, long, seed, hard=True)


def broker_kill_backlog(work: Path, long: bool, seed: int | None) -> list[Result]:
    with Stack(work) as stack:
        r = scenarios.broker_kill_backlog(stack, rate=500, backlog=20 if long else 3, timeout=120)
    r.extra["lost_is_expected"] = True
    return [r]


def gateway_kills(work: Path, long: bool, seed: int | None) -> list[Result]:
    with Stack(work) as stack:
        r = scenarios.gateway_kills(
            stack,
            kills=20 if long else 4,
            rate=500,
            up=(0.3, 4.0) if long else (0.3, 2.0),
            seed=seed,
            timeout=180,
        )
    return [r]


def outbox_truncated(work: Path, long: bool, seed: int | None) -> list[Result]:
    with Stack(work) as stack:
        r = scenarios.outbox_truncated(
            stack, readings=30_000 if long else 2000, rate=2000, keep=0.5, timeout=180
        )
    return [r]


def disk_full(work: Path, long: bool, seed: int | None) -> list[Result]:
    mountpoint = work / "small-state"
    mountpoint.mkdir(parents=True)
    # Long: 16 MiB, so that the backlog of 30 s at 500/s fits once space is back (a 2 MiB
    # disk cannot hold it: the outbox would stay degraded, rightly, until InfluxDB returns).
    size = "16M" if long else "2M"
    # mode=0700: a tmpfs is world-writable (1777) by default, and the gateway refuses that.
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
        check=True,
    )
    try:
        with Stack(work / "stack", state_dir=mountpoint) as stack:
            r = scenarios.disk_full(
                stack, rate=500 if long else 200, full_for=30 if long else 5, timeout=180
            )
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
    r.notes.append(f"outbox back on disk {r.extra['back_on_disk_s']:.1f} s after space was freed")
    return [r]


def bad_point(work: Path, long: bool, seed: int | None) -> list[Result]:
    out = []
    for how in ("conflict", "partial"):
        with Stack(work / how) as stack:
            out.append(scenarios.bad_point_in_batch(stack, size=1000, how=how))
    return out


def bad_inputs(work: Path, long: bool, seed: int | None) -> list[Result]:
    with Stack(work, broker_config=scenarios.BIG_PACKETS) as stack:
        r = scenarios.bad_inputs(
            stack, duration=60 if long else 5, bad_rate=1000, big_rate=10, timeout=180
        )
    expected = r.extra["expected_letters"]
    if r.dropped != expected:
        r.notes.append(f"dead letters {r.dropped} != expected {expected}")
    if not r.extra["alive"] or r.extra["rss_growth_mib"] >= 50:
        r.notes.append("FAILED: process died or RSS grew by 50 MiB or more")
    return [r]


def influx_errors(work: Path, long: bool, seed: int | None) -> list[Result]:
    with Stack(work) as stack:
        return [
            scenarios.influx_errors(
                stack, rate=500 if long else 200, drops_for=30 if long else 8, timeout=120
            )
        ]


SCENARIOS: dict[str, Run] = {
    "influx_outage": influx_outage,
    "broker_restart": broker_restart,
    "broker_kill": broker_kill,
    "broker_kill_backlog": broker_kill_backlog,
    "gateway_kills": gateway_kills,
    "outbox_truncated": outbox_truncated,
    "disk_full": disk_full,
    "bad_point": bad_point,
    "bad_inputs": bad_inputs,
    "influx_errors": influx_errors,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only these (repeatable); default: all",
    )
    parser.add_argument("--long", action="store_true", help="the RELIABILITY.md sizes")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random kill times")
    parser.add_argument("--json", type=Path, help="also write every result here (JSON lines)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outpost-reliability-"))
    results: list[Result] = []
    for name in args.scenario or list(SCENARIOS):
        started = time.monotonic()
        print(f"== {name} ({'long' if args.long else 'short'})", file=sys.stderr, flush=True)
        try:
            rows = SCENARIOS[name](work / name, args.long, args.seed)
        except Exception as exc:  # report the others anyway
            rows = [Result(name, notes=[f"FAILED: {type(exc).__name__}: {exc}"[:500]])]
        for r in rows:
            print(r.row(), file=sys.stderr, flush=True)
            for note in r.notes:
                print(f"   {note}", file=sys.stderr, flush=True)
        print(f"   ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        results += rows
        if args.json:
            with args.json.open("a") as f:
                for r in rows:
                    f.write(json.dumps({**r.__dict__, "name": name}, default=str) + "\n")
    print(TABLE_HEADER)
    for r in results:
        print(r.row())
    print()
    for r in results:
        for note in r.notes:
            print(f"- {r.scenario}: {note}")
    if any(
        (r.lost and not r.extra.get("lost_is_expected"))
        or any(n.startswith("FAILED") for n in r.notes)
        for r in results
    ):
        sys.exit(1)


if __name__ == "__main__":
    main()
