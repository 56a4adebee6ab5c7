"""Fuzzing the loaders of every YAML file: ``outpost.yaml``, rule files, rule test files.

Whatever the text, a loader either loads it or raises its own ``SourceError``
whose every problem is ``file:line:col: message`` inside the file: never
another exception (which would be a traceback at start, or a dead rules task on
a hot reload). Three kinds of input, from shallow to deep:

- any text over the characters YAML cares about;
- a valid file with random edits (characters inserted, deleted, replaced);
- random structures shaped like the file (its own keys at the right places,
  values of the right kind or of any other), written out as YAML, to reach
  validation, expressions, durations, templates and cross-checks.

A few dozen examples each by default; ``OUTPOST_FUZZ_EXAMPLES=N`` (``make
fuzz``) runs N.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.config.loader import parse_config
from gateway.config.schema import Config
from rules import SourceError, load_rules
from rules.loader import ACTION_KEYS, COMMAND_KEYS, MATCH_KEYS, RULE_KEYS
from rules.model import SEVERITIES
from rules.testfile import (
    ALERT_KEYS,
    EVENT_KEYS,
    EXPECT_KEYS,
    FILE_KEYS,
    SERIES_KEYS,
    TEST_KEYS,
    load_test_file,
)

EXAMPLES = int(os.environ.get("OUTPOST_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "greenhouse"

SEED_CONFIG = """\
mqtt:
  host: broker.lan
  port: 8883
  client_id: outpost-gw
  username: outpost
  password: ${MQTT_PASSWORD:-secret}
  tls: {ca: ca.crt, insecure: false}
  keepalive: 30
inputs:
  - topic: sensors/{device}/{metric}
    format: value
    deadband: 0.1
    heartbeat: 5m
  - {topic: zigbee2mqtt/+, format: zigbee2mqtt, tags: {site: north}}
  - topic: ingest/json
    format: json
    device_field: id
    time_field: ts
    max_payload: 64KiB
    bad_time: tag
influx:
  url: http://localhost:8086
  database: outpost
  batch_size: 5000
  flush_interval: 1s
outbox: {enabled: true, max_bytes: 100MB, max_age: 7d}
rules: [rules.d/*.yaml]
notify:
  ops: {type: webhook, webhook: "https://example.invalid/hook", states: [firing, resolved]}
journal: {retention: 30d}
clock: {valid_after: "2024-01-01T00:00:00Z", unsynced: hold}
devices:
  fan-1:
    convention: outpost
    commands: {speed: {type: int, min: 0, max: 100}, mode: {enum: [auto, "on", "off"]}}
    ack_timeout: 10s
serial:
  - {port: /dev/ttyUSB0, baud: 9600, framing: kv, profile: dht22, device: gh-3}
http: {listen: "127.0.0.1:8080", dashboard: true}
state_dir: ./var
log_level: info
"""
SEED_RULES = (EXAMPLES_DIR / "rules.yaml").read_text(encoding="utf-8")
SEED_TEST = (EXAMPLES_DIR / "rules_test.yaml").read_text(encoding="utf-8")

# What YAML, the expression language and the templates give meaning to, and some plain text.
SIGNIFICANT = list("\n\n\n    :::--[]{},#&*!|>'\"%@`?<=+/()$\\.0123456789x_é\t\r")
WORDS = ["rules", "name", "when", "match", "value", "avg(5m)", "absent(1m)", "and", "or",
         "not", "> 30", "<<", "true", "null", "~", "5m", "1h30m", "1e400", "-.inf", ".nan",
         "0x1F", "0o17", "2024-13-45", "!!int", "!!binary", "!!timestamp", "&a", "*a",
         "${HOME}", "${MISSING:-x}", "{device}", "{value:.1f}", "---", "...", "%YAML 1.1"]


def check(load: Callable[[], object], text: str, file: str) -> None:
    """``load()`` loads, or raises SourceError whose problems all point inside ``file``."""
    try:
        load()
    except SourceError as exc:
        assert exc.problems, "a SourceError without a problem"
        last_line = len(text.splitlines()) + 2  # YAML also breaks lines at \r, \x85, \u2028
        for problem in exc.problems:
            mark = problem.mark
            assert mark.file == file, str(problem)
            assert 1 <= mark.line <= last_line and mark.col >= 1, str(problem)
            assert str(problem).startswith(f"{file}:{mark.line}:{mark.col}: "), str(problem)
            assert problem.message.strip(), str(problem)


def load_config(text: str, base: Path) -> Callable[[], object]:
    return lambda: parse_config(text, "outpost.yaml", base, {"MQTT_PASSWORD": "pw"})


def load_rule_file(text: str) -> Callable[[], object]:
    return lambda: load_rules([("rules.yaml", text)])


def load_rule_test(text: str) -> Callable[[], object]:
    return lambda: load_test_file(text, "rules_test.yaml")


# text -----------------------------------------------------------------------------------

any_text = st.lists(st.one_of(st.sampled_from(SIGNIFICANT), st.sampled_from(WORDS),
                              st.text(max_size=3)), max_size=80).map("".join)


@st.composite
def edited(draw: st.DrawFn, seed: str) -> str:
    """``seed`` with a few random insertions, deletions and replacements."""
    text = seed
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 12))
        insert = draw(st.lists(st.sampled_from(SIGNIFICANT + WORDS), max_size=4).map("".join))
        text = text[:at] + insert + text[at + cut:]
    return text


# structures -------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "5m", "0", "-1s", "1.5h", "64KiB", "1e3", "off", "ON", "gh-*", "*",
                     "sensors/{device}/{metric}", "a/+/b", "#", "value > 30", "avg(5m) >",
                     "{device} {value:.1f}", "{nope", "${X}", "http://u:p@h:1/x", "warning",
                     "json", "value", "outpost", "zigbee2mqtt", "kv", "2026-11-27T10:00:00Z"]),
    st.text(alphabet="abc-_.:*?{}[]+# $\\", max_size=12),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6), inner,
                                            max_size=4)),
    max_leaves=12,
)


def mapping(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of ``keys`` (each with its kind of value, or any value), sometimes a stranger."""
    known = {key: st.one_of(strategy, strategy, anything) for key, strategy in keys.items()}
    return st.fixed_dictionaries({}, optional={**known, "unknown_key": anything})


def of_type(annotation: Any) -> st.SearchStrategy[Any]:
    """Values for a field of the config schema."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return st.deferred(lambda: model(annotation))
    if origin is typing.Annotated:
        return of_type(args[0])
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([of_type(a) for a in args])
    if origin is list:
        return st.lists(of_type(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.sampled_from(["fan-1", "x", "speed", "gh-1"]), of_type(args[1]),
                               max_size=2)
    return scalars


def model(cls: type[pydantic.BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    return mapping({name: of_type(field.annotation) for name, field in cls.model_fields.items()})


expressions = st.lists(st.sampled_from(
    ["value", "temperature", "avg(5m)", "rate(1m)", "absent(10m)", "count(", "abs(", "metric(",
     "'x'", "1", "30", "2.5", "1e309", ">", "<", ">=", "==", "!=", "and", "or", "not", "in",
     "+", "-", "*", "/", "%", "(", ")", ",", "[", "]", "5m", "lambda", "__import__", "device",
     "tags.site", "true"]), min_size=1, max_size=10).map(" ".join)
durations = st.one_of(st.sampled_from(["0s", "1s", "5m", "1h30m", "10y", "-1m", "1e9h", "", "m"]),
                      scalars)
command = mapping({"device": st.sampled_from(["fan-1", "{device}", "{nope}", "a/+"]),
                   "set": st.dictionaries(st.sampled_from(["speed", "mode"]), scalars,
                                          max_size=2)})
assert set(COMMAND_KEYS) == {"device", "set"} and ACTION_KEYS == ("command",)
rule = mapping({
    "name": st.sampled_from(["hot", "hot", "cold", "bad name", "x" * 300, ""]),
    "description": scalars,
    "match": mapping({"metric": scalars, "device": scalars, "tags": anything, "topic": scalars}),
    "when": expressions, "clear": expressions,
    "for": durations, "keep_firing_for": durations, "repeat": durations, "stale_after": durations,
    "severity": st.sampled_from([*SEVERITIES, "loud"]),
    "message": st.sampled_from(["{device} is {value:.1f}", "{rule} {state}", "{nope}", "{", ""]),
    "labels": anything,
    "actions": st.lists(mapping({"command": command}), max_size=2),
    "on_resolved": st.lists(mapping({"command": command}), max_size=2),
})
assert set(RULE_KEYS) <= {"name", "description", "match", "when", "clear", "for",
                          "keep_firing_for", "repeat", "severity", "message", "labels",
                          "actions", "on_resolved", "stale_after"}
assert set(MATCH_KEYS) == {"metric", "device", "tags", "topic"}
rule_file = mapping({"rules": st.lists(rule, max_size=3)})

series = mapping({
    "device": st.sampled_from(["gh-1", "", "a/b"]), "metric": st.sampled_from(["temperature"]),
    "tags": anything, "topic": scalars,
    "values": st.sampled_from(["20 25 31x6 27", "_x3 1+1x3", "x", "31x-1", "1e309", ""]),
    "points": st.lists(st.lists(scalars, max_size=3), max_size=3),
    "interval": durations, "offset": durations,
})
expect = mapping({
    "at": durations,
    "alerts": st.lists(mapping({k: scalars for k in ALERT_KEYS}), max_size=2),
    "events": st.lists(mapping({k: scalars for k in EVENT_KEYS}), max_size=2),
    "commands": st.lists(anything, max_size=2),
})
test_file = mapping({
    "rule_files": st.lists(scalars, max_size=2),
    "interval": durations, "start": scalars,
    "tests": st.lists(mapping({"name": scalars, "series": st.lists(series, max_size=2),
                               "expect": st.lists(expect, max_size=2), "interval": durations,
                               "start": scalars}), max_size=2),
})
assert set(FILE_KEYS) | set(TEST_KEYS) | set(SERIES_KEYS) | set(EXPECT_KEYS) <= {
    "rule_files", "interval", "start", "tests", "name", "series", "expect", "device", "metric",
    "tags", "topic", "values", "points", "offset", "at", "alerts", "events", "commands"}


@st.composite
def written(draw: st.DrawFn, structure: st.SearchStrategy[Any]) -> str:
    """A structure as YAML text, in block or flow style."""
    return yaml.safe_dump(draw(structure), default_flow_style=draw(st.booleans()),
                          allow_unicode=True, sort_keys=False)


# the targets ------------------------------------------------------------------------------

@FUZZ
@given(text=st.one_of(any_text, edited(SEED_CONFIG)))
def test_config_loader_text(text: str, tmp_path_factory) -> None:
    check(load_config(text, tmp_path_factory.getbasetemp()), text, "outpost.yaml")


@FUZZ
@given(text=written(model(Config)))
def test_config_loader_structures(text: str, tmp_path_factory) -> None:
    check(load_config(text, tmp_path_factory.getbasetemp()), text, "outpost.yaml")


@FUZZ
@given(text=st.one_of(any_text, edited(SEED_RULES)))
def test_rule_loader_text(text: str) -> None:
    check(load_rule_file(text), text, "rules.yaml")


@FUZZ
@given(text=written(rule_file))
def test_rule_loader_structures(text: str) -> None:
    check(load_rule_file(text), text, "rules.yaml")


@FUZZ
@given(text=st.one_of(any_text, edited(SEED_TEST), written(test_file)))
# found by this fuzzing: AttributeError and TypeError instead of a problem
@example(text="tests:\n- series:\n  - device: gh-1\n    metric: temperature\n    tags: true\n")
@example(text="tests:\n- expect:\n  - alerts:\n    - state: {}\n")
def test_rule_test_file_loader(text: str) -> None:
    check(load_rule_test(text), text, "rules_test.yaml")


def test_the_seeds_load() -> None:
    """The edited inputs start from files that load, so an edit is what breaks them."""
    load_rule_file(SEED_RULES)()
    load_rule_test(SEED_TEST)()
    loaded = parse_config(SEED_CONFIG, "outpost.yaml", Path("/nonexistent"),
                          {"MQTT_PASSWORD": "pw"})
    assert len(loaded.config.inputs) == 3
