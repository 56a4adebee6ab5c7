"""`rules test` files: series notation, expectations, failures that show expected vs got."""

from __future__ import annotations

import textwrap

import pytest

from rules import SourceError, load_rules
from rules.ruletest import load_test_file, parse_series, run_tests

RULES = load_rules(
    [
        (
            "rules.yaml",
            textwrap.dedent("""\
    rules:
      - name: hot
        match: {metric: t}
        when: value > 30
        for: 20s
        actions: [{command: {device: fan, set: {speed: 100}}}]
    """),
        )
    ]
)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("20 25 31", [20.0, 25.0, 31.0]),
        ("1 _ 2", [1.0, None, 2.0]),
        ("31x3", [31.0, 31.0, 31.0]),
        ("_x2 5", [None, None, 5.0]),
        ("20+1x3 10-2.5x2", [20.0, 21.0, 22.0, 10.0, 7.5]),
        ("true false on", [True, False, "on"]),
        ("-1.5 1e2", [-1.5, 100.0]),
    ],
)
def test_series_notation(text: str, values: list[object]) -> None:
    assert parse_series(text) == values


def run(text: str) -> list[str]:
    spec = load_test_file(textwrap.dedent(text), "t.yaml")
    return [str(f) for f in run_tests(spec, RULES).failures]


def test_passing_expectations() -> None:
    assert (
        run("""\
        rule_files: [rules.yaml]
        tests:
          - name: fires
            series: [{device: a, metric: t, values: "31 31 31"}]
            expect:
              - at: 0s
                alerts: [{rule: hot, device: a, state: pending}]
              - at: 20s
                alerts: [{rule: hot, device: a, state: [firing, resolved]}]
                events: [{rule: hot, device: a, state: firing}]
                commands: [{target: fan, set: {speed: 100}}]
    """)
        == []
    )


def test_failures_show_expected_and_got_with_location() -> None:
    failures = run("""\
        rule_files: [rules.yaml]
        tests:
          - name: wrong
            series:
              - {device: a, metric: t, points: [[0s, 31], [5s, 31]]}
            expect:
              - at: 10s
                alerts: [{rule: hot, device: a, state: firing}, {rule: nope, device: a,
                          state: firing}]
                commands: [{target: fan, set: {speed: 100}}]
                events: []
    """)
    assert failures == [
        "t.yaml:8:18: wrong: at 10s: alert hot/a: expected firing, got pending",
        "t.yaml:8:57: wrong: at 10s: unknown rule 'nope'",
        "t.yaml:7:9: wrong: at 10s: events\n  expected: []\n  got:      [('hot', 'a', 'pending')]",
        "t.yaml:7:9: wrong: at 10s: commands\n  expected: [{'target': 'fan', 'set': "
        "{'speed': 100}}]\n  got:      []",
    ]


def test_test_file_problems_are_reported_with_location() -> None:
    with pytest.raises(SourceError) as info:
        load_test_file(
            textwrap.dedent("""\
            rule_files: rules.yaml
            tests:
              - name: x
                series: [{device: a, metric: t, values: "1 2", colour: red}]
                expect:
                  - {at: 2m, alerts: [{rule: hot, device: a, state: burning}]}
                  - {at: 1m}
            """),
            "t.yaml",
        )
    assert [str(p) for p in info.value.problems] == [
        "t.yaml:1:13: 'rule_files' must be a list of file names",
        "t.yaml:4:52: unknown key 'colour' in series (known: device, metric, tags, topic, "
        "values, points, interval, offset)",
        "t.yaml:6:27: 'state' must be one of inactive, pending, firing, resolved",
        "t.yaml:7:14: expectations must be in time order",
    ]
