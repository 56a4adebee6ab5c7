"""Rules engine throughput: 1,000 rules over 10,000 devices, one core.

Goal (issue 3): at least 200,000 rule evaluations per second. A "rule
evaluation" is one (rule, reading) pair whose condition the engine evaluated —
the number in ``Engine.counters()["evaluations"]``.

Set-up, chosen so each reading matches several rules, window rules included:
20 metrics; devices ``d<g>-<n>`` in 10 groups of 1,000; rule ``i`` watches
metric ``m<i % 20>`` on devices ``d<(i // 20) % 10>-*`` — so each (metric,
group) pair has 5 rules: 2 thresholds with ``for``/``clear``, one window
average, one cross-metric, one rate/stddev window rule. Readings cycle through
devices and metrics with values drifting through the thresholds so alerts
really go pending, fire and resolve.

Run:  .venv/bin/python benchmarks/rules_engine.py [--readings N]
Also measures, in the same run, the cost of a bare ``observe`` with no rule
matching (the engine's fixed overhead), to compare against.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rules import Engine, Sample, load_rules
from rules.model import RuleSet

SECOND = 1_000_000_000
METRICS, GROUPS, PER_GROUP = 20, 10, 1000

TEMPLATES = [
    '  - name: hot_{i}\n    match: {{metric: m{m}, device: "d{g}-*"}}\n'
    "    when: value > 70\n    for: 30s\n    clear: value < 60\n",
    '  - name: cold_{i}\n    match: {{metric: m{m}, device: "d{g}-*"}}\n'
    '    when: value < 10 and device != "none"\n    keep_firing_for: 10s\n',
    '  - name: avg_{i}\n    match: {{metric: m{m}, device: "d{g}-*"}}\n'
    "    when: avg(5m) > 65 and count(5m) >= 3\n",
    '  - name: cross_{i}\n    match: {{metric: m{m}, device: "d{g}-*"}}\n'
    "    when: value > 50 and m{other} > 50\n    repeat: 10m\n",
    '  - name: rate_{i}\n    match: {{metric: m{m}, device: "d{g}-*"}}\n'
    "    when: rate(2m) > 0.5 or stddev(2m) > 30\n",
]


def rules_text(n_rules: int) -> str:
    lines = ["rules:\n"]
    for i in range(n_rules):
        m, g = i % METRICS, (i // METRICS) % GROUPS
        kind = (i // (METRICS * GROUPS)) % len(TEMPLATES)
        lines.append(TEMPLATES[kind].format(i=i, m=m, g=g, other=(m + 1) % METRICS))
    return "".join(lines)


def make_readings(n: int, start: int = 0, churn: bool = False) -> list[Sample]:
    """Each device reports two metrics (m<k>, m<k+1>), round robin, 1,000 readings/s.

    Steady: values wander in 35..65 with a rare excursion past the thresholds
    (a few alert transitions per thousand readings). Churn: values swing 5..95,
    so most series cross every threshold — about one alert event per two readings.
    """
    out = []
    devices = [(f"d{g}-{k}", k % METRICS) for k in range(PER_GROUP) for g in range(GROUPS)]
    for j in range(start, start + n):
        device, k = devices[(j // 2) % len(devices)]
        metric = f"m{(k + j % 2) % METRICS}"
        ts = j * (SECOND // 1000)
        if churn:
            value = 50 + 45 * math.sin(j / 50_000 + k)
        else:
            value = 50 + 15 * math.sin(j / 50_000 + k) + (30 if j % 997 == 0 else 0)
        out.append(Sample(device, metric, value, ts))
    return out


def run(
    ruleset: RuleSet, readings: list[Sample], engine: Engine | None = None
) -> tuple[float, Engine, int]:
    engine = engine or Engine(ruleset)
    outputs = 0
    start = time.perf_counter()
    for r in readings:
        outputs += len(engine.observe(r, r.ts))
    return time.perf_counter() - start, engine, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--rules", type=int, default=1000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    ruleset = load_rules([("bench.yaml", rules_text(args.rules))])
    load_s = time.perf_counter() - t0
    # Warm-up: the first reading of each of the 20,000 series (cache misses,
    # window allocation), timed separately from the steady state.
    warm = make_readings(2 * GROUPS * PER_GROUP)
    readings = make_readings(args.readings, start=len(warm))

    empty = load_rules([("none.yaml", "rules: []\n")])
    _, bare, _ = run(empty, warm)
    base_s, _, _ = run(empty, readings, bare)
    warm_s, engine, _ = run(ruleset, warm)
    warm_evals = engine.counters()["evaluations"]
    elapsed, engine, outputs = run(ruleset, readings, engine)
    c = engine.counters()
    evals = c["evaluations"] - warm_evals

    churn = make_readings(args.readings // 3, start=len(warm), churn=True)
    _, churn_engine, _ = run(ruleset, warm)
    churn_s, churn_engine, churn_out = run(ruleset, churn, churn_engine)
    churn_evals = churn_engine.counters()["evaluations"] - warm_evals
    rows = [
        (
            "warm-up (first reading per series)",
            f"{len(warm):,}",
            f"{warm_evals / warm_s:,.0f} evaluations/s",
        ),
        ("rules loaded", f"{len(ruleset.rules):,}", f"in {load_s * 1000:.0f} ms"),
        ("devices", f"{GROUPS * PER_GROUP:,}", f"{METRICS} metrics"),
        ("readings", f"{len(readings):,}", f"{len(readings) / elapsed:,.0f} readings/s"),
        ("rule evaluations", f"{evals:,}", f"{evals / len(readings):.1f} per reading"),
        ("steady: evaluations / s", f"{evals / elapsed:,.0f}", "target >= 200,000"),
        ("engine, no rules", f"{len(readings) / base_s:,.0f} readings/s", "fixed overhead"),
        ("alert events + commands", f"{outputs:,}", f"undefined {c['undefined']:,}"),
        (
            "window points held",
            f"{c['window_points']:,}",
            f"dropped {c['window_points_dropped']:,}",
        ),
        (
            "churn: evaluations / s",
            f"{churn_evals / churn_s:,.0f}",
            f"{churn_out:,} outputs for {len(churn):,} readings",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"rules engine benchmark (one core, Python {sys.version.split()[0]})")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>22}  {note}")
    ok = evals / elapsed >= 200_000
    print("PASS" if ok else "BELOW TARGET")


if __name__ == "__main__":
    main()
