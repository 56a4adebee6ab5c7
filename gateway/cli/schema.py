"""``outpost schema``: JSON Schemas of the config, the rule files and every event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.cli.event_schemas import EVENTS
from gateway.config.schema import Config
from rules import alert_event_schema, rule_file_schema


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
