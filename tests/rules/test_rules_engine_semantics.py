"""DESIGN §6 semantics on a fake clock, one keyword at a time (times in seconds)."""

from __future__ import annotations

import pytest

from rules import AlertEvent

from .helpers import MIN, Clock, S, engine_for, rule, states


def clock(body: str) -> Clock:
    return Clock(engine_for(rule(body)))


# ----------------------------------------------------------------- for / pending


def test_alert_fires_after_for_duration_inclusive() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nfor: 30s")
    c.feed(0, 31)
    assert c.state() == "pending"
    c.tick(29.999)
    assert c.state() == "pending"
    c.tick(30)
    assert c.state() == "firing"
    assert c.events() == [(0, "pending"), (30, "firing")]


def test_rule_without_for_fires_at_once_and_publishes_no_pending() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30")
    c.feed(0, 31)
    assert c.events() == [(0, "firing")]


def test_cancelled_pending_publishes_inactive() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nfor: 1m")
    c.series([31, 25])
    assert c.events() == [(0, "pending"), (10, "inactive")]
    [inactive] = [e for e in c.outputs if isinstance(e, AlertEvent) and e.state == "inactive"]
    assert inactive.active_at == 0 and inactive.fired_at is None


def test_transition_due_at_a_readings_time_happens_before_it() -> None:
    # The for deadline is 60 s; the reading at 60 s says "false": the alert must
    # first fire (at 60 s) and then resolve on that reading.
    c = clock("match: {metric: m}\nwhen: value > 30\nfor: 1m")
    c.feed(0, 31)
    c.feed(60, 20)
    assert c.events() == [(0, "pending"), (60, "firing"), (60, "resolved")]


def test_undefined_when_neither_starts_nor_ends_an_alert() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nfor: 1m")
    c.feed(0, 31)
    c.feed(10, "broken")  # a string compared with a number: undefined
    assert c.state() == "pending"
    c.feed(20, "broken", device="d2")
    assert c.state("d2") == "inactive"
    assert c.engine.rule_counters()["r"]["undefined"] == 2


# ------------------------------------------------------------- clear / hysteresis


def test_clear_defaults_to_not_when() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30")
    c.series([31, 30])
    assert c.events() == [(0, "firing"), (10, "resolved")]


def test_clear_gives_hysteresis() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nclear: value < 28")
    c.series([31, 29, 29.5, 27.9])
    assert c.events() == [(0, "firing"), (30, "resolved")]


def test_resolved_alert_goes_pending_again_when_true() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nfor: 10s")
    c.series([31, 31, 20, 31])
    assert c.events() == [(0, "pending"), (10, "firing"), (20, "resolved"), (30, "pending")]
    assert c.engine.state_of("r", "d1").resolved_at is None


# ---------------------------------------------------------------- keep_firing_for


def test_keep_firing_for_resolves_after_clear_held() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nkeep_firing_for: 30s")
    c.series([31, 20])
    assert c.state() == "firing"
    c.tick(39)
    assert c.state() == "firing"
    c.tick(40)
    assert c.events() == [(0, "firing"), (40, "resolved")]


def test_keep_firing_for_hold_restarts_on_any_reading_with_clear_false() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nclear: value < 28\nkeep_firing_for: 30s")
    c.series([31, 20, 20, 29, 20])  # 29: clear false (not when either) → restart at 40
    c.tick(69)
    assert c.state() == "firing"
    c.tick(70)
    assert c.events() == [(0, "firing"), (70, "resolved")]


# ------------------------------------------------------------------------ repeat


def test_repeat_renotifies_from_last_notification_without_rerunning_actions() -> None:
    c = clock(
        "match: {metric: m}\nwhen: value > 30\nrepeat: 1m\n"
        "actions:\n  - command: {device: fan, set: {speed: 1}}"
    )
    c.feed(0, 31)
    c.tick(125)
    repeats = [e for e in c.outputs if isinstance(e, AlertEvent) and e.repeat]
    assert [e.at / S for e in repeats] == [60, 120]
    assert all(e.state == "firing" for e in repeats)
    assert len(c.commands()) == 1
    assert c.engine.next_deadline() == 180 * S


# ------------------------------------------------------------------------ absent


def test_absent_fires_at_exact_deadline_and_resolves_on_next_reading() -> None:
    c = clock("match: {metric: m}\nwhen: absent(10m)")
    c.feed(0, 1)
    assert c.engine.next_deadline() == 10 * MIN
    c.tick(599.999)
    assert c.state() == "inactive"
    c.tick(600)
    [ev] = [e for e in c.outputs if isinstance(e, AlertEvent)]
    assert ev.state == "firing" and ev.value is None and ev.at == 10 * MIN
    c.feed(700, 2)
    assert c.events() == [(600, "firing"), (700, "resolved")]


def test_absent_watches_every_device_metric_pair_seen() -> None:
    c = clock("match: {metric: m}\nwhen: absent(1m)")
    c.feed(0, 1, device="a")
    c.feed(30, 1, device="b")
    c.feed(50, 1, device="a")
    c.tick(200)
    assert [(e.device, e.at / S) for e in c.outputs if isinstance(e, AlertEvent)] == [
        ("b", 90),
        ("a", 110),
    ]


def test_absent_rule_respects_device_glob() -> None:
    c = clock('match: {metric: m, device: "gh-*"}\nwhen: absent(1m)')
    c.feed(0, 1, device="gh-1")
    c.feed(0, 1, device="other")
    c.tick(120)
    assert {e.device for e in c.outputs if isinstance(e, AlertEvent)} == {"gh-1"}


def test_absent_with_for_goes_pending_then_fires() -> None:
    c = clock("match: {metric: m}\nwhen: absent(1m)\nfor: 30s")
    c.feed(0, 1)
    c.tick(200)
    assert c.events() == [(60, "pending"), (90, "firing")]


# ----------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ("avg(1m) == 20", [10, 20, 30], True),
        ("min(1m) == 10", [30, 10, 20], True),
        ("max(1m) == 30", [30, 10, 20], True),
        ("sum(1m) == 60", [10, 20, 30], True),
        ("count(1m) == 3", [10, 20, 30], True),
        ("last(1m) == 30", [10, 20, 30], True),
        ("delta(1m) == 20", [10, 20, 30], True),
        ("rate(1m) == 1", [10, 20, 30], True),  # 20 over 20 s
        ("stddev(1m) == 5", [10, 20, 10, 20], True),  # population stddev
        ("round(stddev(1m), 3) == 8.165", [10, 20, 30], True),
    ],
)
def test_window_functions(expr: str, values: list[float], expected: bool) -> None:
    c = clock(f"match: {{metric: m}}\nwhen: {expr}")
    c.series(values)
    assert (c.state() == "firing") is expected


def test_window_holds_readings_with_t_minus_d_exclusive() -> None:
    # At t=60 a 1m window holds (0, 60]: the reading at 0 is out.
    c = clock("match: {metric: m}\nwhen: count(1m) == 2")
    c.feed(0, 1)
    c.feed(30, 1)
    assert c.state() == "firing"
    c.feed(60, 1)  # window (0, 60] = {30, 60}: still 2
    assert c.state() == "firing"
    c.feed(61, 1)  # (1, 61] = {30, 60, 61}
    assert c.state() == "resolved"


@pytest.mark.parametrize("fn", ["avg", "min", "max", "last", "stddev"])
def test_empty_window_is_undefined(fn: str) -> None:
    c = clock(f"match: {{metric: m}}\nwhen: {fn}(other, 1m) > 0 or true")
    c.feed(0, 1)
    # `or` short-circuits left to right: the undefined left side makes it all false
    assert c.state() == "inactive"
    assert c.engine.rule_counters()["r"]["undefined"] == 1


@pytest.mark.parametrize("fn", ["rate", "delta"])
def test_rate_and_delta_need_two_points(fn: str) -> None:
    c = clock(f"match: {{metric: m}}\nwhen: {fn}(1m) >= 0")
    c.feed(0, 1)
    assert c.state() == "inactive"
    c.feed(10, 2)
    assert c.state() == "firing"


def test_count_and_sum_of_empty_window_are_zero() -> None:
    c = clock("match: {metric: m}\nwhen: count(other, 1m) == 0 and sum(other, 1m) == 0")
    c.feed(0, 1)
    assert c.state() == "firing"


def test_window_over_another_metric_of_the_same_device() -> None:
    c = clock("match: {metric: t}\nwhen: max(h, 1m) > 80")
    c.feed(0, 85, metric="h")
    c.feed(1, 20, metric="h", device="d2")
    c.feed(5, 20, metric="t")
    c.feed(5, 20, metric="t", device="d2")
    assert (c.state(), c.state("d2")) == ("firing", "inactive")


def test_window_memory_is_bounded_and_drops_are_counted() -> None:
    c = Clock(engine_for(rule("match: {metric: m}\nwhen: count(1h) > 0"), max_window_points=5))
    for i in range(8):
        c.feed(i, i)
    counters = c.engine.counters()
    assert counters["window_points"] == 5 and counters["window_points_dropped"] == 3


def test_windows_keep_only_the_longest_span_needed() -> None:
    c = clock("match: {metric: m}\nwhen: avg(1m) > 100")
    for i in range(100):
        c.feed(i * 10, 1)
    assert c.engine.counters()["window_points"] == 6


# --------------------------------------------------------- cross-metric, staleness


def test_other_metric_of_same_device_by_name() -> None:
    c = clock("match: {metric: humidity}\nwhen: value > 80 and temperature > 25")
    c.feed(0, 26, metric="temperature")
    c.feed(1, 81, metric="humidity")
    c.feed(1, 81, metric="humidity", device="d2")  # d2 has no temperature: undefined
    assert (c.state(), c.state("d2")) == ("firing", "inactive")
    assert c.engine.rule_counters()["r"]["undefined"] == 1


def test_metric_function_reads_names_with_dashes() -> None:
    c = clock('match: {metric: m}\nwhen: metric("pm2-5") > 10')
    c.feed(0, 12, metric="pm2-5")
    c.feed(1, 0)
    assert c.state() == "firing"


@pytest.mark.parametrize(("age", "state"), [(300, "firing"), (300.001, "inactive")])
def test_other_metric_older_than_stale_after_is_undefined(age: float, state: str) -> None:
    c = clock("match: {metric: m}\nwhen: other > 0")
    c.feed(0, 1, metric="other")
    c.feed(age, 1)
    assert c.state() == state


def test_stale_after_is_settable_per_rule() -> None:
    c = clock("match: {metric: m}\nwhen: other > 0\nstale_after: 10s")
    c.feed(0, 1, metric="other")
    c.feed(11, 1)
    assert c.state() == "inactive"


@pytest.mark.parametrize(
    ("expr", "value", "tags"),
    [
        ("value / 0 > 1", 1, {}),
        ("value % 0 > 1", 1, {}),
        ('tags.zone == "north"', 1, {}),  # missing tag
        ("value > 1", "text", {}),  # string compared with a number
        ("value > 1", True, {}),  # a boolean is not a number
        ("not (value > 1)", "text", {}),  # undefined even under not
    ],
)
def test_undefined_cases_are_false_and_counted(
    expr: str, value: object, tags: dict[str, str]
) -> None:
    c = clock(f"match: {{metric: m}}\nwhen: '{expr}'")
    c.feed(0, value, **tags)
    assert c.state() == "inactive"
    assert c.engine.counters()["undefined"] == 1


def test_tags_device_and_in() -> None:
    c = clock(
        'match: {metric: m}\nwhen: tags.zone in ["north", "east"] and device != "x" '
        'and tags["x-y"] == "1"'
    )
    c.feed(0, 1, zone="north", **{"x-y": "1"})
    c.feed(0, 1, device="d2", zone="south", **{"x-y": "1"})
    assert (c.state(), c.state("d2")) == ("firing", "inactive")


def test_boolean_and_string_values() -> None:
    c = clock('match: {metric: m}\nwhen: value == true or value == "on"')
    c.feed(0, True)
    c.feed(0, "on", device="d2")
    c.feed(0, 1.0, device="d3")  # 1.0 == true is a kind mismatch: undefined
    assert [c.state(d) for d in ("d1", "d2", "d3")] == ["firing", "firing", "inactive"]


# ---------------------------------------------------------------------- matching


def test_device_glob_is_case_sensitive_with_star_and_question_mark() -> None:
    c = clock('match: {metric: m, device: "gh-?"}\nwhen: true')
    for device in ("gh-1", "GH-1", "gh-12", "gh-"):
        c.feed(0, 1, device=device)
    assert {e.device for e in c.outputs if isinstance(e, AlertEvent)} == {"gh-1"}


def test_match_by_tags_and_topic_filter() -> None:
    engine = engine_for("""
rules:
  - {name: north, match: {metric: m, tags: {zone: north}}, when: "true"}
  - {name: topic, match: {topic: "sensors/+/m"}, when: "true"}
""")
    from rules import Sample

    out = engine.observe(Sample("d1", "m", 1.0, 0, {"zone": "north"}, topic="sensors/d1/m"), 0)
    out += engine.observe(Sample("d2", "m", 1.0, 0, {"zone": "south"}, topic="other/d2/m"), 0)
    assert sorted((e.rule, e.device) for e in out if isinstance(e, AlertEvent)) == [
        ("north", "d1"),
        ("topic", "d1"),
    ]


def test_reading_only_evaluates_rules_that_can_match_it() -> None:
    engine = engine_for("""
rules:
  - {name: a, match: {metric: temperature, device: "gh-*"}, when: "value > 1"}
  - {name: b, match: {metric: humidity}, when: "value > 1"}
  - {name: c, match: {metric: temperature, device: "x-*"}, when: "value > 1"}
""")
    from .helpers import reading

    engine.observe(reading("gh-1", "temperature", 0, 0), 0)
    assert engine.rule_counters() == {
        "a": {"evaluations": 1, "undefined": 0},
        "b": {"evaluations": 0, "undefined": 0},
        "c": {"evaluations": 0, "undefined": 0},
    }


# ----------------------------------------------------------------- time handling


def test_clock_never_goes_backwards() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nfor: 10s")
    c.feed(100, 31)
    c.feed(50, 31)  # earlier `now` is taken as 100
    assert c.engine.state_of("r", "d1").active_at == 100 * S


def test_next_deadline_is_none_when_nothing_is_scheduled() -> None:
    c = clock("match: {metric: m}\nwhen: value > 30\nfor: 10s")
    assert c.engine.next_deadline() is None
    c.feed(0, 31)
    assert c.engine.next_deadline() == 10 * S
    c.feed(5, 0)
    assert c.engine.next_deadline() is None
    assert states(c.tick(100)) == []
