"""``outpost events``: read the event journal of the gateway in ``state_dir``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from gateway.actions import sentences
from gateway.cli.common import load_config_or_report
from gateway.config.units import parse_duration
from gateway.journal import FILE_NAME, Entry, Journal
from rules import rfc3339


def describe(entry: Entry) -> str:
    """One readable line per journal entry: its time, what happened, and its trace."""
    trace = f"  [trace {entry.trace_id}]" if entry.trace_id else ""
    return f"{rfc3339(entry.ts)}  {sentences.describe(entry.kind, entry.payload)}{trace}"


def as_json(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": rfc3339(entry.ts),
        "kind": entry.kind,
        "rule": entry.rule,
        "device": entry.device,
        "trace_id": entry.trace_id,
        "event": entry.payload,
    }


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("events", parents=[common], help="read the event journal")
    parser.add_argument("--since", metavar="D", help="only the last D (e.g. 1h, 2d)")
    parser.add_argument("--trace", metavar="ID", help="only what one reading started")
    parser.add_argument("--limit", type=int, metavar="N", help="only the last N entries")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=_cmd_events)


def _cmd_events(args: argparse.Namespace) -> int:
    loaded = load_config_or_report(args)
    if loaded is None:
        return 2
    try:
        since = time.time_ns() - int(parse_duration(args.since) * 1e9) if args.since else None
    except ValueError as exc:
        print(f"--since: {exc}", file=sys.stderr)
        return 2
    state_dir = Path(loaded.config.state_dir)
    if not (state_dir / FILE_NAME).exists():
        print(f"no journal in {state_dir} (has the gateway run with this config?)", file=sys.stderr)
        return 1
    journal = Journal(state_dir, readonly=True)
    try:
        for entry in journal.entries(since_ns=since, trace_id=args.trace, limit=args.limit):
            print(json.dumps(as_json(entry), ensure_ascii=False) if args.json else describe(entry))
    finally:
        journal.close()
    return 0
