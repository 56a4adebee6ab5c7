"""The attack soak, briefly: every hostile message of the corpus, replayed next to honest
devices, against the real gateway (``python -m benchmarks.attack`` runs it for 60 s)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.attack import CORPUS, report, run


def test_hostile_messages_cost_nothing_honest_devices_send(tmp_path: Path) -> None:
    result = run(seconds=6.0, attack_rate=300.0, honest_rate=30.0, workdir=tmp_path)
    summary = report(result)
    assert result.gateway_up, summary
    assert result.honest_sent > 0 and result.honest_stored == result.honest_sent, summary
    assert result.attack_sent >= len(CORPUS) and result.attack_stored == 0, summary
    assert result.attack_counted == result.attack_sent - result.stress_sent, summary  # counted
    assert result.rss_end_mb - result.rss_start_mb < 50, summary
