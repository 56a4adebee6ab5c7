"""One row per measurement, the table they make, and the JSON file they are saved to."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.procstat import Usage

COLUMNS = (
    "id",
    "row",
    "QoS",
    "msg/s",
    "ratio",
    "vs",
    "CPU s/10k msg",
    "peak RSS MiB",
    "lost",
    "notes",
)


@dataclass
class Row:
    id: str
    name: str
    qos: int
    rate: float  # messages/s
    cpu_per_10k: float  # CPU seconds of the measured process per 10,000 messages
    peak_rss_mib: float
    lost: int  # readings published and not received/stored
    vs: str  # id of the row the ratio is taken against
    notes: str = ""
    ratio: float | None = None
    figures: dict[str, float] = field(default_factory=dict)  # extra numbers (latencies…)

    @classmethod
    def measured(
        cls,
        id: str,
        name: str,
        *,
        qos: int,
        vs: str,
        sent: dict[str, Any],
        done: float,
        messages: float,
        usage: Usage,
        lost: int,
        paced: bool = False,
    ) -> Row:
        """A row from the publisher's report ``sent`` and the wall-clock time ``done`` the
        last of ``messages`` was received or stored. The rate counts from the first
        publish to ``done``; a paced row's rate is the one the publisher achieved."""
        publish_s = sent["end"] - sent["start"]
        done_s = done - sent["start"]
        return cls(
            id=id,
            name=name,
            qos=qos,
            rate=sent["sent"] / publish_s if paced else messages / done_s,
            cpu_per_10k=usage.cpu_seconds / max(messages, 1) * 10_000,
            peak_rss_mib=usage.peak_rss_kib / 1024,
            lost=lost,
            vs=vs,
            figures={"publish_s": publish_s, "done_s": done_s, "cpu_s": usage.cpu_seconds},
        )


def fill_ratios(rows: list[Row]) -> None:
    rates = {row.id: row.rate for row in rows}
    for row in rows:
        row.ratio = row.rate / rates[row.vs] if rates.get(row.vs) else None


def _cells(row: Row) -> list[str]:
    ratio = f"{row.ratio:.2f}" if row.ratio is not None else "?"
    return [
        row.id,
        row.name,
        str(row.qos),
        f"{row.rate:,.0f}",
        ratio,
        row.vs,
        f"{row.cpu_per_10k:.2f}",
        f"{row.peak_rss_mib:.0f}",
        f"{row.lost:,}",
        row.notes,
    ]


def table(rows: list[Row]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    cells = [list(COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def first_line(*command: str) -> str:
    """The first line a command prints (a version), or "?"."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mosquitto": first_line("mosquitto", "-h"),
        "influxd": first_line("influxd", "version"),
    }


def save(path: Path, rows: list[Row], settings: dict[str, Any], notes: list[str]) -> None:
    document = {
        "machine": machine(),
        "settings": settings,
        "columns": {
            "rate": "messages/s (paced rows: the rate the publisher achieved)",
            "ratio": "rate / rate of the row named by vs",
            "cpu_per_10k": "CPU seconds (utime+stime) of the measured process per 10,000 messages",
            "peak_rss_mib": "VmHWM of the measured process",
            "lost": "readings published and not received (baselines) or stored (gateway)",
        },
        "rows": [asdict(r) for r in rows],
        "notes": notes,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
