"""``outpost schema``: JSON Schemas of the config, the rule files and every event.

The pydantic models below are the documented shape of each event the gateway
builds itself; the alert event's schema comes from the rules engine that emits
it (:func:`rules.alert_event_schema`), so there is one definition of each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.cli.common import add_json_flag, print_json
from gateway.config.schema import Config
from rules import alert_event_schema, rule_file_schema


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordedReading(_Event):
    """One line of ``outpost record`` output and ``rules replay`` input."""

    ts: int = Field(description="reading time, ns since the epoch (UTC)")
    device: str
    metric: str
    value: float | bool | str
    tags: dict[str, str] = Field(default_factory=dict)


class DeadLetter(_Event):
    """Published on ``outpost/deadletter`` for input that cannot become a stored reading."""

    topic: str = Field(description="topic the message came on")
    payload: str = Field(
        description="the payload (UTF-8 text, or base64 when encoding says so), at most 4 KiB"
    )
    reason: str = Field(description="short stable reason, e.g. bad_json, non_finite, too_large")
    detail: str = ""
    ts: str = Field(description="when it was refused, RFC 3339 UTC with milliseconds")
    encoding: Literal["base64"] | None = None
    truncated: bool | None = None
    size: int | None = Field(None, description="original payload size when truncated")


class Command(_Event):
    """Published on ``devices/{device}/set`` (outpost convention): an id plus the settings."""

    model_config = ConfigDict(extra="allow")
    id: str


class CommandAck(_Event):
    """Published by a device on ``devices/{device}/ack``."""

    model_config = ConfigDict(extra="allow")
    id: str
    ok: bool
    error: str | None = None


EVENTS: dict[str, type[BaseModel]] = {
    "reading": RecordedReading,
    "deadletter": DeadLetter,
    "command": Command,
    "command-ack": CommandAck,
}


def all_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {"config": Config.model_json_schema()}
    schemas["rules"] = rule_file_schema()
    for name, model in EVENTS.items():
        schemas[f"event-{name}"] = model.model_json_schema()
    schemas["event-alert"] = alert_event_schema()
    for name, schema in schemas.items():
        schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
        schema.setdefault("title", name)
    return schemas


def write_schemas(out_dir: str) -> list[Path]:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    schema = sub.add_parser(
        "schema", parents=[common], help="write JSON Schemas of the config, rules and events"
    )
    schema.add_argument(
        "--out", default="schemas", metavar="DIR", help="output folder (default: ./schemas)"
    )
    add_json_flag(schema, "the files written")
    schema.set_defaults(func=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    written = [str(path) for path in write_schemas(args.out)]
    if args.json:
        print_json({"written": written})
    else:
        print("\n".join(written))
    return 0
