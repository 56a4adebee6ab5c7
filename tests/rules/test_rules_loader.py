"""Rule files: every problem reported at its file:line:col; the schema agrees with the loader."""

from __future__ import annotations

import textwrap

import pytest

from rules import SourceError, check_rules, load_rules, rule_file_schema
from rules.loader import MATCH_KEYS, RULE_KEYS

BROKEN = textwrap.dedent("""\
    rules:
      - name: hot
        match: {metric: temperature, device: "gh-[1]"}
        when: value > 30 and foo(3)
        for: 5x
        severity: loud
        colour: red
      - name: hot
        match: {metric: temperature}
        when: |
          value > 30 and
          tags.zone.x == "a"
        message: "{value.__class__}"
      - name: other
        match: {metric: t, topic: "a/#/b"}
        when: "value + 'a' > 3"
        repeat: 10
        clear: value > 1 and
        actions:
          - command: {device: fan-1}
          - notify: me
        stale_after: 0s
        labels: {team: [a]}
    """)


def messages(*sources: tuple[str, str]) -> list[str]:
    return [str(p) for p in check_rules(list(sources))]


def test_every_error_of_a_broken_file_is_reported_with_line_and_column() -> None:
    assert messages(("bad.yaml", BROKEN)) == [
        "bad.yaml:3:42: bad device glob 'gh-[1]': '[' is not allowed (only * and ? are wildcards)",
        "bad.yaml:4:26: when: unknown function 'foo' (known: abs, absent, avg, count, delta, "
        "last, max, metric, min, rate, round, stddev, sum)",
        "bad.yaml:5:10: 'for': bad duration '5x' (expected e.g. 30s, 5m, 1h30m)",
        "bad.yaml:6:15: unknown severity 'loud' (one of info, warning, critical)",
        "bad.yaml:7:5: unknown key 'colour' in rule (known: name, description, match, when, "
        "clear, for, keep_firing_for, repeat, severity, message, labels, actions, on_resolved, "
        "stale_after)",
        "bad.yaml:8:11: duplicate rule name 'hot' (first defined at bad.yaml:2:11)",
        "bad.yaml:12:16: when: '.' is not allowed after a tag",
        "bad.yaml:13:14: 'message': unknown message field {value.__class__} (known: device, "
        "value, rule, severity, metric, state, tags.NAME, labels.NAME)",
        "bad.yaml:15:31: bad topic filter 'a/#/b': '#' must be a whole last level",
        "bad.yaml:16:20: when: arithmetic on strings is not allowed ('+')",
        "bad.yaml:17:13: 'repeat': duration '10' needs a unit (s, m, h, d, ms), e.g. 10s",
        "bad.yaml:18:25: clear: expression ends too early",
        "bad.yaml:20:18: 'command' needs 'set': a non-empty mapping",
        "bad.yaml:21:9: each entry of 'actions' must be 'command: {device: ..., set: {...}}'",
        "bad.yaml:22:18: 'stale_after' must be longer than zero",
        "bad.yaml:23:20: 'labels.team' must be a string",
    ]


def test_duplicate_rule_names_across_files() -> None:
    a = "rules:\n  - {name: x, match: {metric: m}, when: 'true'}\n"
    assert messages(("a.yaml", a), ("b.yaml", "\n" + a)) == [
        "b.yaml:3:12: duplicate rule name 'x' (first defined at a.yaml:2:12)"
    ]


def test_unknown_key_suggests_the_closest_one() -> None:
    text = "rules:\n  - {name: x, match: {metric: m}, when: 'true', severty: info}\n"
    assert messages(("a.yaml", text)) == [
        "a.yaml:2:49: unknown key 'severty' in rule; did you mean 'severity'?"
    ]


def test_yaml_syntax_and_duplicate_keys_are_errors() -> None:
    assert messages(("a.yaml", "rules:\n  - name: x\n    name: y\n")) == [
        "a.yaml:3:5: duplicate key 'name' (first at line 2)"
    ]
    assert messages(("a.yaml", "rules: [\n"))[0].startswith("a.yaml:2:1: YAML:")


def test_required_keys_and_shapes() -> None:
    assert messages(("a.yaml", "rules:\n  - {name: x}\n  - 3\nother: 1\n")) == [
        "a.yaml:2:5: rule without 'match' (e.g. match: {metric: temperature})",
        "a.yaml:2:5: rule without 'when'",
        "a.yaml:3:5: each rule must be a mapping",
        "a.yaml:4:1: unknown key 'other' in rule file (known: rules)",
    ]


def test_expression_error_column_inside_quoted_and_folded_scalars() -> None:
    text = (
        'rules:\n  - name: x\n    match: {metric: m}\n    when: "value >  = 3"\n'
        "  - name: y\n    match: {metric: m}\n    when: >-\n      value > 1 and\n"
        "        bad(2)\n"
    )
    assert messages(("a.yaml", text)) == [
        "a.yaml:4:21: when: use '==' to compare ('=' is not an operator)",
        "a.yaml:9:9: when: unknown function 'bad' (known: abs, absent, avg, count, delta, "
        "last, max, metric, min, rate, round, stddev, sum)",
    ]


def test_on_off_yes_stay_strings_in_command_values() -> None:
    text = (
        "rules:\n  - name: x\n    match: {metric: m}\n    when: 'true'\n    actions:\n"
        "      - command: {device: '{device}-relay', set: {power: ON, level: 3, f: 1.5}}\n"
    )
    [r] = load_rules([("a.yaml", text)]).rules
    assert dict(r.actions[0].settings) == {"power": "ON", "level": 3, "f": 1.5}


def test_empty_file_has_no_rules() -> None:
    assert load_rules([("a.yaml", ""), ("b.yaml", "rules: []\n")]).rules == ()


def test_fingerprint_ignores_formatting_but_not_meaning() -> None:
    a = "rules:\n  - {name: x, match: {metric: m}, when: 'value>1', for: 60s}\n"
    b = "rules:\n  - name: x\n    for: 1m\n    when: (value > 1.0)\n    match:\n      metric: m\n"
    c = "rules:\n  - {name: x, match: {metric: m}, when: 'value>2', for: 60s}\n"
    fa, fb, fc = (load_rules([("f", t)]).rules[0].fingerprint for t in (a, b, c))
    assert fa == fb != fc


def test_source_error_lists_problems_in_file_order() -> None:
    with pytest.raises(SourceError) as info:
        load_rules([("z.yaml", BROKEN), ("a.yaml", "rules: 3\n")])
    assert info.value.problems[0].mark.file == "a.yaml"


def test_schema_agrees_with_loader_keys() -> None:
    schema = rule_file_schema()
    item = schema["properties"]["rules"]["items"]
    assert set(item["properties"]) == set(RULE_KEYS)
    assert set(item["properties"]["match"]["properties"]) == set(MATCH_KEYS)
    assert item["additionalProperties"] is False
    assert item["properties"]["severity"]["enum"] == ["info", "warning", "critical"]
