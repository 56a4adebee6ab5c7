"""JSON Schemas for rule files (editor completion, ``outpost schema``) and alert events.

Hand-written rather than generated from pydantic models because the loader is
the single source of truth for what a rule file may contain; the key lists come
from :mod:`rules.loader`, and a test checks that schema and loader agree. The
schema cannot check expressions — ``outpost rules check`` does.
"""

from __future__ import annotations

from typing import Any

from rules.durations import DURATION_PATTERN
from rules.events import alert_event_schema
from rules.loader import COMMAND_KEYS, MATCH_KEYS, RULE_KEYS, TOP_KEYS
from rules.model import SEVERITIES

__all__ = ["alert_event_schema", "rule_file_schema"]


def rule_file_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a rule file."""
    duration = {
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": "e.g. 30s, 5m, 1h30m, 1d",
    }
    string_map = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
    command = {
        "type": "object",
        "additionalProperties": False,
        "required": ["command"],
        "properties": {
            "command": {
                "type": "object",
                "additionalProperties": False,
                "required": list(COMMAND_KEYS),
                "properties": {
                    "device": {
                        "type": "string",
                        "minLength": 1,
                        "description": "target device; may use {device}, {tags.NAME}",
                    },
                    "set": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": ["number", "string", "boolean"]},
                    },
                },
            }
        },
    }
    rule_props: dict[str, Any] = {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$"},
        "description": {"type": "string"},
        "match": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "metric": {"type": "string", "minLength": 1},
                "device": {
                    "type": "string",
                    "minLength": 1,
                    "description": "glob with * and ?, case-sensitive",
                },
                "tags": string_map,
                "topic": {
                    "type": "string",
                    "minLength": 1,
                    "description": "MQTT topic filter with + and #",
                },
            },
        },
        "when": {"type": "string", "minLength": 1, "description": "condition (DESIGN §6)"},
        "clear": {"type": "string", "minLength": 1, "description": "default: not (when)"},
        "for": duration,
        "keep_firing_for": duration,
        "repeat": duration,
        "stale_after": duration,
        "severity": {"enum": list(SEVERITIES), "default": "warning"},
        "message": {
            "type": "string",
            "description": "fields: {device} {value:.1f} {rule} {severity} {metric} "
            "{state} {tags.NAME} {labels.NAME}",
        },
        "labels": string_map,
        "actions": {"type": "array", "items": command},
        "on_resolved": {"type": "array", "items": command},
    }
    assert set(rule_props) == set(RULE_KEYS)
    assert set(rule_props["match"]["properties"]) == set(MATCH_KEYS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://outpost.example/schemas/rules.json",
        "title": "Outpost rule file",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            TOP_KEYS[0]: {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "match", "when"],
                    "properties": rule_props,
                },
            }
        },
    }
