"""A self-contained HTML page charting a replay (``rules replay --html``).

One inline SVG chart per numeric series (device, metric) with the thresholds
its rules compare ``value`` with (dashed lines) and the pending (amber) and
firing (red) spans of those rules shaded. No CDN, no external file: the page
must open from an e-mail attachment or an air-gapped Pi. A few lines of inline
JS show the time and value under the pointer. Long series are thinned to at
most ``max_points`` per chart by keeping each bucket's min and max, so spikes
that triggered alerts stay visible.

Pure: takes the data, returns the HTML text; the CLI writes it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rules.events import AlertEvent, rfc3339
from rules.matching import compile_glob
from rules.model import Rule
from rules.state import AlertState

WIDTH, HEIGHT, PAD = 960, 220, 40


@dataclass(frozen=True, slots=True)
class Span:
    rule: str
    state: AlertState  # pending or firing
    start: int
    end: int


def alert_spans(events: Iterable[AlertEvent], end: int) -> dict[tuple[str, str], list[Span]]:
    """(rule, device) → pending/firing intervals, an open one closed at ``end``."""
    open_: dict[tuple[str, str], tuple[AlertState, int]] = {}
    out: dict[tuple[str, str], list[Span]] = {}
    for ev in events:
        key = (ev.rule, ev.device)
        if ev.repeat:
            continue
        if key in open_:
            state, start = open_.pop(key)
            out.setdefault(key, []).append(Span(ev.rule, state, start, ev.at))
        if ev.state in (AlertState.PENDING, AlertState.FIRING):
            open_[key] = (ev.state, ev.at)
    for key, (state, start) in open_.items():
        out.setdefault(key, []).append(Span(key[0], state, start, end))
    return out


def _thin(points: Sequence[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    if len(points) <= max_points:
        return list(points)
    size = len(points) / (max_points / 2)
    out: list[tuple[int, float]] = []
    i = 0.0
    while int(i) < len(points):
        bucket = points[int(i) : int(i + size)] or points[int(i) : int(i) + 1]
        lo = min(bucket, key=lambda p: p[1])
        hi = max(bucket, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
        i += size
    return out


def render_html(
    series: Mapping[tuple[str, str], Sequence[tuple[int, float]]],
    events: Sequence[AlertEvent],
    rules: Sequence[Rule],
    title: str = "Replay",
    max_points: int = 2000,
) -> str:
    """The report page for ``series`` ((device, metric) → [(ts, value)], time-ordered)."""
    t_end = max((pts[-1][0] for pts in series.values() if pts), default=0)
    t_end = max([t_end] + [e.at for e in events])
    spans = alert_spans(events, t_end)
    charts: list[str] = []
    data: list[list[list[float]]] = []
    for (device, metric), points in sorted(series.items()):
        if not points:
            continue
        pts = _thin(points, max_points)
        related = [
            r
            for r in rules
            if (r.match.metric in (None, metric))
            and (r.match.device is None or compile_glob(r.match.device)(device))
        ]
        thresholds = sorted(
            {
                t
                for r in related
                for t in r.when.thresholds + (r.clear.thresholds if r.clear else ())
            }
        )
        my_spans = [s for r in related for s in spans.get((r.name, device), [])]
        charts.append(_chart(len(data), device, metric, pts, thresholds, my_spans))
        data.append([[t / 1e6, v] for t, v in pts])
    legend = "".join(
        f"<li>{html.escape(rfc3339(e.at) or '')} <b class='{e.state.value}'>{e.state.value}"
        f"</b> {html.escape(e.rule)} / {html.escape(e.device)}: {html.escape(e.message)}</li>"
        for e in events[:2000]
    )
    return _PAGE.format(
        title=html.escape(title),
        charts="\n".join(charts) or "<p>No numeric series.</p>",
        events=legend or "<li>No alerts.</li>",
        data=json.dumps(data).replace("</", "<\\/"),
        w=WIDTH,
        h=HEIGHT,
        pad=PAD,
    )


def _chart(
    idx: int,
    device: str,
    metric: str,
    pts: list[tuple[int, float]],
    thresholds: list[float],
    spans: list[Span],
) -> str:
    t0, t1 = pts[0][0], max(pts[-1][0], pts[0][0] + 1)
    values = [v for _, v in pts] + thresholds
    lo, hi = min(values), max(values)
    if hi == lo:
        hi, lo = hi + 1, lo - 1

    def x(t: int) -> float:
        return PAD + (min(max(t, t0), t1) - t0) * (WIDTH - 2 * PAD) / (t1 - t0)

    def y(v: float) -> float:
        return HEIGHT - PAD + (lo - v) * (HEIGHT - 2 * PAD) / (hi - lo)

    parts = [
        f'<rect class="{s.state.value}" x="{x(s.start):.1f}" y="{PAD - 10}" '
        f'width="{max(x(s.end) - x(s.start), 1):.1f}" height="{HEIGHT - 2 * PAD + 20}">'
        f"<title>{html.escape(s.rule)} {s.state.value} {rfc3339(s.start)} – "
        f"{rfc3339(s.end)}</title></rect>"
        for s in spans
    ]
    for t in thresholds:
        parts.append(
            f'<line class="thr" x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(t):.1f}" '
            f'y2="{y(t):.1f}"/>'
            f'<text x="{WIDTH - PAD + 2}" y="{y(t) + 4:.1f}">{t:g}</text>'
        )
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
    parts.append(f'<polyline points="{line}"/>')
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 8}">{html.escape(rfc3339(t0) or "")}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{html.escape(rfc3339(t1) or '')}</text>"
        f'<text x="4" y="{PAD}">{hi:g}</text><text x="4" y="{HEIGHT - PAD}">{lo:g}</text>'
    )
    return (
        f"<section><h2>{html.escape(device)} · {html.escape(metric)}</h2>"
        f'<svg data-i="{idx}" data-t0="{t0 / 1e6}" data-t1="{t1 / 1e6}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
        + "".join(parts)
        + '</svg><div class="tip"></div></section>'
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
svg {{ background: #fafafa; border: 1px solid #ddd; }}
polyline {{ fill: none; stroke: #1565c0; stroke-width: 1.5; }}
rect.pending {{ fill: #ffb300; opacity: .25; }} rect.firing {{ fill: #e53935; opacity: .25; }}
line.thr {{ stroke: #555; stroke-dasharray: 6 4; }} text {{ font-size: 11px; fill: #555; }}
b.pending {{ color: #b27b00; }} b.firing {{ color: #c62828; }} b.resolved {{ color: #2e7d32; }}
.tip {{ height: 1.4em; color: #555; }}
</style></head><body>
<h1>{title}</h1>
<p>Shaded: <b class="pending">pending</b>, <b class="firing">firing</b>; dashed: thresholds.</p>
{charts}
<h2>Alert events</h2><ul>{events}</ul>
<script>
const DATA = {data};
for (const svg of document.querySelectorAll("svg[data-i]")) {{
  const pts = DATA[+svg.dataset.i], t0 = +svg.dataset.t0, t1 = +svg.dataset.t1;
  const tip = svg.nextElementSibling;
  svg.addEventListener("mousemove", (ev) => {{
    const r = svg.getBoundingClientRect();
    const t = t0 + (ev.clientX - r.left - {pad}) / (r.width - 2 * {pad}) * (t1 - t0);
    let best = pts[0];
    for (const p of pts) if (Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
    tip.textContent = new Date(best[0]).toISOString() + "  " + best[1];
  }});
}}
</script></body></html>
"""
