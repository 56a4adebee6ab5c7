"""Hot reload keeps the state of unchanged rules; state survives export/restore."""

from __future__ import annotations

import json

from rules import Engine, StoredAlert, StoredSeries, load_rules

from .helpers import Clock, S, engine_for, reading

RULES = """
rules:
  - name: hot
    match: {metric: m}
    when: value > 30
    for: 1m
  - name: silent
    match: {metric: m}
    when: absent(5m)
"""


def test_reload_keeps_state_of_unchanged_rules_and_drops_changed_ones() -> None:
    c = Clock(engine_for(RULES + "  - {name: cold, match: {metric: m}, when: value < 0}\n"))
    c.feed(0, 31)
    c.feed(0, -5, device="d2")
    new = load_rules(
        [
            (
                "r.yaml",
                RULES.replace("for: 1m", "for: 60s")
                + "  - {name: cold, match: {metric: m}, when: value < -1}\n"
                "  - {name: new, match: {metric: m}, when: 'true'}\n",
            )
        ]
    )
    result = c.engine.reload(new)
    assert result.kept == ("hot", "silent") and result.changed == ("cold",)
    assert result.added == ("new",) and result.removed == () and result.dropped_alerts == 1
    assert c.engine.state_of("hot", "d1").active_at == 0
    assert c.state("d2", "cold") == "inactive"
    # The kept pending alert still fires at its original deadline.
    c.tick(60)
    assert c.state("d1", "hot") == "firing"


def test_reload_keeps_absent_watches_and_windows() -> None:
    c = Clock(engine_for(RULES))
    c.feed(0, 1)
    c.engine.reload(
        load_rules(
            [("r.yaml", RULES + "  - {name: w, match: {metric: m}, when: 'count(10m) >= 2'}\n")]
        )
    )
    c.feed(10, 1)
    # No rule needed a window of m before the reload, so the new one starts empty.
    assert c.state("d1", "w") == "inactive"
    c.feed(20, 1)
    assert c.state("d1", "w") == "firing"
    c.tick(320)
    assert c.state("d1", "silent") == "firing"


def test_state_export_restore_round_trip_through_json() -> None:
    e1 = engine_for(RULES)
    e1.observe(reading("d1", "m", 31, 0), 0)
    e1.observe(reading("d2", "m", 31, 0), 0)
    e1.tick(60 * S)
    e1.observe(reading("d3", "m", 31, 70), 70 * S)  # pending, due at 130 s
    alerts = [a.to_dict() for a in e1.export_alerts()]
    series = [s.to_dict() for s in e1.export_series()]
    journal = json.loads(json.dumps({"alerts": alerts, "series": series}))

    e2 = engine_for(RULES)
    restored = e2.restore(
        [StoredAlert.from_dict(a) for a in journal["alerts"]],
        [StoredSeries.from_dict(s) for s in journal["series"]],
    )
    assert restored == 3
    assert e2.state_of("hot", "d1") == e1.state_of("hot", "d1")
    # No re-announcement of firing alerts; the pending one fires at its own deadline.
    assert e2.next_deadline() == 130 * S
    out = e2.tick(130 * S)
    assert [(o.device, o.state.value, o.at) for o in out] == [("d3", "firing", 130 * S)]
    # Known series are watched by absent() after a restart.
    out = e2.tick(370 * S)
    assert sorted(o.device for o in out if o.rule == "silent") == ["d1", "d2", "d3"]


def test_restore_skips_alerts_of_rules_whose_definition_changed() -> None:
    e1 = engine_for(RULES)
    e1.observe(reading("d1", "m", 31, 0), 0)
    stored = e1.export_alerts()
    e2 = Engine(load_rules([("r.yaml", RULES.replace("value > 30", "value > 31"))]))
    assert e2.restore(stored) == 0
    assert e2.state_of("hot", "d1").state.value == "inactive"
