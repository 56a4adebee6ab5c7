"""Gateway throughput and latency against raw MQTT subscribers, in one table.

    python -m benchmarks.bench [--count N] [--json FILE] [--disk] [--sustained MINUTES]

Every row runs on the same freshly started Mosquitto and influxd, with the same
publisher (``benchmarks/publisher.py``), one after the other. The baselines only count
what the broker delivers; the gateway rows run the real ``outpost run`` until influxd
holds every reading. Ratios are against the raw paho-mqtt MQTT 3.1.1 subscriber at the
same QoS (or the row named in ``vs``). The meaning of each row is in README.md,
section Benchmarks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import baselines, cases, latency, sustained
from benchmarks.cpulimit import CpuLimit, CpuLimitUnavailable
from benchmarks.report import Row, fill_ratios, save, table
from benchmarks.rig import Rig

BUDGET = 0.25  # of one core: roughly what a Raspberry Pi leaves a gateway


class Bench:
    """Rows measured one after the other on one rig, with notes for under the table."""

    def __init__(self, rig: Rig, args: argparse.Namespace) -> None:
        self.rig, self.args = rig, args
        self.wanted = set(args.rows.split(",")) if args.rows else None
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def measure(self, step: Callable[..., Row], id: str, *args: Any, **options: Any) -> Row:
        """``step(rig, id, *args, **options)``, its row added and announced on stderr."""
        t0 = time.monotonic()
        row = step(self.rig, id, *args, **options)
        self.rows.append(row)
        print(
            f"{row.id} {row.name}: {row.rate:,.0f} msg/s, {row.lost:,} lost "
            f"({time.monotonic() - t0:.0f} s)",
            file=sys.stderr,
        )
        return row

    def optional(self, step: Callable[..., Row], id: str, *args: Any, **options: Any) -> Row | None:
        """:meth:`measure`, unless --rows leaves the row out."""
        if self.wanted is None or id in self.wanted:
            return self.measure(step, id, *args, **options)
        return None

    def standard(self) -> None:
        """Every row of ``make bench`` (and D1 with --disk)."""
        m, n, args = self.optional, self.args.count, self.args
        m(baselines.mosquitto_sub, "B1", "mosquitto_sub (C), MQTT 3.1.1", n, vs="B2")
        m(baselines.paho, "B2", "raw paho, MQTT 3.1.1", n, vs="B2")
        m(baselines.paho, "B3", "raw paho, MQTT 5", n, protocol="5", vs="B2")
        m(baselines.paho, "B4", "raw paho, MQTT 3.1.1", n, qos=1, vs="B4")
        m(baselines.paho, "B5", "raw paho, MQTT 3.1.1, JSON", n // 5, kind="json", vs="B2")
        no_rules = m(cases.throughput, "G1", "gateway, value readings", n, vs="B2")
        m(cases.throughput, "G2", "gateway, Zigbee2MQTT JSON", n // 5, kind="json", vs="B5")
        m(cases.throughput, "G3", "gateway, value readings, ack after safe", n, qos=1, vs="B4")
        rules = {"rules": [str(cases.write_rules(self.rig.workdir))]}
        name = "gateway, 100 rules (10 match each)"
        with_rules = m(cases.throughput, "G4", name, n, extra=rules, vs="B2")
        if no_rules and with_rules:
            with_rules.figures["ratio_to_no_rules"] = with_rules.rate / no_rules.rate
            with_rules.notes = f"{with_rules.rate / no_rules.rate:.2f} of G1 (no rules, same run)"
        name = f"gateway, {args.latency_rate:,.0f}/s offered, 1 rule + command"
        m(latency.row, "G5", name, args.latency_rate, args.latency_seconds, vs="B2")
        self.budget(n // 4)
        if args.disk:
            m(sustained.disk, "D1", args.window, vs="B4")

    def budget(self, n: int) -> None:
        """B6 and G6: raw paho and the gateway each held to a quarter of one core."""
        if self.wanted is not None and not self.wanted & {"B6", "G6"}:
            return
        try:
            with CpuLimit(BUDGET) as limit:
                self.notes.append(f"1/4 core: a cgroup with {limit.setting}, joined once ready.")
                name = "raw paho, MQTT 3.1.1, 1/4 core"
                self.optional(baselines.paho, "B6", name, n, vs="B2", limit=limit)
                name = "gateway, value readings, 1/4 core"
                self.optional(cases.throughput, "G6", name, n, vs="B6", limit=limit)
        except CpuLimitUnavailable as exc:
            self.notes.append(f"B6 and G6 (a quarter of one core) SKIPPED: {exc}")

    def sustained(self) -> None:
        """G1 (the burst), P1 (the paced maximum), S1 (80 % of P1 for --sustained minutes),
        D1 (disk writes)."""
        args = self.args
        peak = self.measure(cases.throughput, "G1", "gateway, value readings", args.count, vs="G1")
        probe = min(15.0, args.window)
        most = self.measure(
            sustained.paced_maximum, "P1", min(args.latency_rate, peak.rate / 2), peak.rate, probe,
            vs="G1")
        rate, seconds = 0.8 * most.figures["paced_maximum"], args.sustained * 60
        name = f"gateway, 80 % of P1 for {args.sustained:g} min, 1 rule + command"
        held = self.measure(sustained.sustained, "S1", name, rate, seconds, args.window, vs="P1")
        self.measure(sustained.disk, "D1", args.window, vs="G1")
        self.notes.append(f"\nS1, its first and last {args.window:g} s:\n")
        self.notes.append(sustained.window_table(held))
        self.notes.append(sustained.verdict(held))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count",
        type=int,
        default=200_000,
        help="value readings per throughput row (JSON rows: count/5 messages, "
        "1/4-core rows: count/4); default %(default)s",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=5000,
        help="G5: readings/s offered; default %(default)s",
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=10, help="G5: seconds; default %(default)s"
    )
    parser.add_argument(
        "--disk",
        action="store_true",
        help="add D1: KiB/min the gateway writes for 100 devices at 1 reading/s",
    )
    parser.add_argument(
        "--sustained",
        type=float,
        metavar="MINUTES",
        help="instead of the standard rows: G1, P1 (the highest rate carried while "
        "paced, searched from --latency-rate up to G1's), then S1 at 80 %% of P1's rate "
        "for MINUTES (first vs last window), then D1",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=60,
        metavar="SECONDS",
        help="D1's measurement and each S1 window; default %(default)s",
    )
    parser.add_argument(
        "--rows",
        metavar="IDS",
        help="only these standard rows, e.g. B2,G1 (ratios need their vs row too)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="outpost-bench-"))
    started, load = time.monotonic(), os.getloadavg()[0]
    with Rig(workdir) as rig:
        bench = Bench(rig, args)
        if args.sustained:
            bench.sustained()
        else:
            bench.standard()
    fill_ratios(bench.rows)
    print()
    print(table(bench.rows))
    if bench.notes:
        print("\n".join(bench.notes))
    print(
        f"\n{args.count:,} readings per throughput row, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{time.monotonic() - started:.0f} s in all; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs"
    )
    if args.json:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        settings["load_average_at_start"] = load
        save(args.json, bench.rows, settings, bench.notes)
    lost = [r.id for r in bench.rows if r.lost]
    if lost:
        sys.exit(f"readings lost in {', '.join(lost)}; logs and configs kept in {workdir}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
