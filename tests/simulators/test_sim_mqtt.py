"""`outpost simulate` and the load generator against a real Mosquitto, seen by a paho client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators import Broker, SimOptions, Simulation, load_scenario, publish_load, runner
from simulators.cli import main
from tests.services import Mosquitto
from tests.simulators.conftest import Received, Subscriber, statuses

REPO = Path(__file__).resolve().parents[2]
METRICS_ORDER = ["temperature", "humidity", "pressure", "co2", "battery"]  # sensors.yaml
METRICS = set(METRICS_ORDER)


@pytest.fixture(autouse=True)
def _no_stray_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The simulator reads ./outpost.yaml when present: run where there is none.
    monkeypatch.chdir(tmp_path)


def simulate(broker: Mosquitto, *args: str) -> int:
    return main(["--host", "127.0.0.1", "--port", str(broker.port), *args])


@pytest.fixture
def simulator_process(
    mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "simulators", "--host", "127.0.0.1"]
        cmd += ["--port", str(mosquitto.port), *args]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        log = open(tmp_path / f"simulator-{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def json_samples(messages: list[Received]) -> list[tuple[str, dict[str, float]]]:
    return [
        (m.topic.split("/")[1], json.loads(m.payload))
        for m in messages
        if m.topic.count("/") == 1 and m.topic.startswith("sensors/")
    ]


def test_both_styles_arrive_on_their_topics_with_the_json_fields(
    mosquitto: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    sub = subscribe(["sensors/#"])
    started_ms = time.time() * 1000
    assert (
        simulate(
            mosquitto,
            "--devices",
            "2",
            "--count",
            "6",
            "--rate",
            "20",
            "--style",
            "both",
            "--seed",
            "1",
        )
        == 0
    )
    sub.wait_for(lambda ms: len(ms) >= 6 * 6)
    msgs = sub.snapshot()
    assert len(msgs) == 36
    samples = json_samples(msgs)
    # Devices have connections of their own, so only the timestamps order them.
    by_time = sorted(samples, key=lambda s: s[1]["ts"])
    assert [d for d, _ in by_time] == ["sim-1", "sim-2"] * 3
    for _, body in samples:
        assert set(body) == METRICS | {"ts"}
        assert isinstance(body["ts"], int)
        assert started_ms - 1000 <= body["ts"] <= time.time() * 1000 + 1000  # epoch ms
    # The value-style messages of a sample carry the same numbers as its JSON twin.
    # (One device's messages keep their order: they share a connection.)
    sim1 = [m for m in msgs if m.topic.split("/")[1] == "sim-1"]
    assert [m.topic for m in sim1[:6]] == [f"sensors/sim-1/{k}" for k in METRICS_ORDER] + [
        "sensors/sim-1"
    ]
    values = {m.topic.rsplit("/", 1)[1]: float(m.payload) for m in sim1[:5]}
    assert values == {k: v for k, v in json.loads(sim1[5].payload).items() if k != "ts"}


def test_the_same_seed_publishes_the_same_values(
    mosquitto: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    def values(seed: str) -> list[tuple[str, dict[str, float]]]:
        sub = subscribe(["sensors/+"])
        assert simulate(mosquitto, "--count", "9", "--rate", "50", "--seed", seed) == 0
        sub.wait_for(lambda ms: len(ms) >= 9)
        sub.close()
        return [
            (d, {k: v for k, v in b.items() if k != "ts"}) for d, b in json_samples(sub.snapshot())
        ]

    first = values("9")
    assert len(first) == 9
    assert values("9") == first
    assert values("10") != first


def test_status_is_retained_online_then_offline_after_sigterm(
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    simulator_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    proc = simulator_process("--devices", "2", "--rate", "5")
    watcher = subscribe(["devices/+/status", "sensors/+"])
    watcher.wait_for(lambda ms: statuses(ms) == {"sim-1": b"online", "sim-2": b"online"})
    watcher.wait_for(lambda ms: len(json_samples(ms)) >= 2)  # and readings flow
    late = subscribe(["devices/+/status"])  # sees only what the broker retained
    late.wait_for(lambda ms: len(ms) == 2)
    assert all(m.retain and m.payload == b"online" for m in late.snapshot())

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    watcher.wait_for(lambda ms: statuses(ms) == {"sim-1": b"offline", "sim-2": b"offline"})
    after = subscribe(["devices/+/status"])
    after.wait_for(lambda ms: statuses(ms) == {"sim-1": b"offline", "sim-2": b"offline"})
    assert all(m.retain for m in after.snapshot())


def test_will_marks_every_device_offline_when_the_simulator_is_killed(
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    simulator_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    proc = simulator_process("--devices", "3", "--rate", "2")
    watcher = subscribe(["devices/+/status"])
    online = {f"sim-{i}": b"online" for i in (1, 2, 3)}
    watcher.wait_for(lambda ms: statuses(ms) == online)

    proc.kill()  # SIGKILL: no chance to say goodbye; the broker publishes the wills
    proc.wait(timeout=10)
    offline = {f"sim-{i}": b"offline" for i in (1, 2, 3)}
    watcher.wait_for(lambda ms: statuses(ms) == offline)
    late = subscribe(["devices/+/status"])
    late.wait_for(lambda ms: statuses(ms) == offline)
    assert all(m.retain for m in late.snapshot())


def test_shared_connection_announces_and_retires_every_device(
    mosquitto: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    watcher = subscribe(["devices/+/status"])
    assert (
        simulate(
            mosquitto, "--devices", "4", "--connections", "shared", "--count", "8", "--rate", "20"
        )
        == 0
    )
    offline = {f"sim-{i}": b"offline" for i in (1, 2, 3, 4)}
    watcher.wait_for(lambda ms: statuses(ms) == offline)
    assert sum(m.payload == b"online" for m in watcher.snapshot()) == 4


def test_publishing_is_paced_at_the_requested_rate(
    mosquitto: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    sub = subscribe(["sensors/+"])
    t0 = time.monotonic()
    # 2 devices × 10 samples/s for 2 s: exactly 40 samples, spread over the 2 s.
    assert simulate(mosquitto, "--devices", "2", "--rate", "10", "--duration", "2s") == 0
    took = time.monotonic() - t0
    sub.wait_for(lambda ms: len(ms) >= 40)
    time.sleep(0.2)
    msgs = sub.snapshot()
    assert len(msgs) == 40
    # Generous bounds (a loaded 2-core machine): not a burst, not twice too slow.
    span = msgs[-1].at - msgs[0].at
    assert 1.4 <= span <= 4.0, span
    assert msgs[19].at - msgs[0].at >= 0.6  # the first half is spread out too
    assert took < 10


async def test_load_mode_publishes_exactly_count_messages(mosquitto: Mosquitto) -> None:
    sub = Subscriber(mosquitto.port, ["sensors/#"], qos=1)
    try:
        stats = await publish_load("127.0.0.1", mosquitto.port, count=3000, qos=1)
        assert (stats.messages, stats.readings) == (3000, 3000)
        assert stats.elapsed > 0 and stats.rate > 0
        sub.wait_for(lambda ms: len(ms) >= 3000)
        await_quiet(sub)
        assert len(sub.snapshot()) == 3000

        stats = await publish_load("127.0.0.1", mosquitto.port, count=500, style="json", devices=3)
        assert (stats.messages, stats.readings) == (500, 500 * len(METRICS))
        sub.wait_for(lambda ms: len(ms) >= 3500)
        await_quiet(sub)
        assert len(sub.snapshot()) == 3500
        bodies = [json.loads(m.payload) for m in sub.snapshot()[3000:]]
        for device in ("load-1", "load-2", "load-3"):  # ns timestamps never repeat
            ts = [
                b["ts"]
                for m, b in zip(sub.snapshot()[3000:], bodies, strict=True)
                if m.topic == f"sensors/{device}"
            ]
            assert ts == sorted(set(ts))
    finally:
        sub.close()


async def test_load_mode_at_a_target_rate_takes_the_expected_time(mosquitto: Mosquitto) -> None:
    stats = await publish_load("127.0.0.1", mosquitto.port, count=300, rate=500)
    assert stats.messages == 300
    assert 0.5 <= stats.elapsed <= 3.0  # 299 intervals of 2 ms = 0.6 s


def await_quiet(sub: Subscriber, quiet: float = 0.3) -> None:
    """Wait until nothing more arrives for `quiet` seconds (to catch extra messages)."""
    n = -1
    while n != len(sub.snapshot()):
        n = len(sub.snapshot())
        time.sleep(quiet)


def test_simulator_reconnects_after_a_broker_restart(
    mosquitto: Mosquitto,
    subscribe: Callable[..., Subscriber],
    simulator_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    proc = simulator_process("--devices", "2", "--rate", "5")
    before = subscribe(["sensors/+"])
    before.wait_for(lambda ms: len(ms) >= 2)
    mosquitto.restart()
    after = Subscriber(mosquitto.port, ["sensors/+", "devices/+/status"])
    try:
        # Backoff starts at 0.5 s: readings from both devices resume within seconds,
        # and each device announced itself online again on its new connection.
        after.wait_for(lambda ms: {d for d, _ in json_samples(ms)} == {"sim-1", "sim-2"}, 15)
        assert statuses(after.snapshot()) == {"sim-1": b"online", "sim-2": b"online"}
    finally:
        after.close()
    assert proc.poll() is None


def test_broker_address_comes_from_the_config_file(
    mosquitto: Mosquitto, subscribe: Callable[..., Subscriber], tmp_path: Path
) -> None:
    (tmp_path / "outpost.yaml").write_text(
        f"mqtt:\n  host: ${{SIM_TEST_HOST:-127.0.0.1}}\n  port: {mosquitto.port}\n"
        "influx: {url: 'http://localhost:8086'}\n"
    )
    sub = subscribe(["sensors/+"])
    assert main(["--count", "2", "--rate", "20"]) == 0  # ./outpost.yaml, found in the cwd
    sub.wait_for(lambda ms: len(ms) == 2)


def test_a_broken_scenario_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmetrics:\n  temperature: {baseline: 21, nois: 1}\n")
    assert main(["--scenario", str(bad), "--port", "1"]) == 2
    assert f"{bad}:3: metrics.temperature.nois" in capsys.readouterr().err


def test_an_unreachable_broker_ends_with_exit_1_after_the_duration(free_port: int) -> None:
    t0 = time.monotonic()
    assert main(["--host", "127.0.0.1", "--port", str(free_port), "--duration", "1s"]) == 1
    assert time.monotonic() - t0 < 5


def test_outpost_simulate_verb_uses_the_config_and_logs_what_it_does(
    mosquitto: Mosquitto, subscribe: Callable[..., Subscriber], tmp_path: Path
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(f"mqtt: {{host: 127.0.0.1, port: {mosquitto.port}}}\n")
    sub = subscribe(["sensors/+"])
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "simulate", "-c", str(config), "--count", "3"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    sub.wait_for(lambda ms: len(ms) == 3)
    # One line saying what goes where, one at the end: nothing per message.
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert f"mqtt://127.0.0.1:{mosquitto.port}" in lines[0] and "sim-1" in lines[0]


async def test_a_stalled_simulator_skips_missed_samples_instead_of_bursting(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "CATCH_UP_LIMIT", 0.3)
    models = load_scenario().build_models(seed=1, count=1)
    options = SimOptions(rate=20, duration=1.5)
    sim = Simulation(models, Broker("127.0.0.1", mosquitto.port), options)
    # Freeze the event loop for 0.8 s mid-run, as a suspended machine would.
    asyncio.get_running_loop().call_later(0.5, time.sleep, 0.8)
    stats = await sim.run(asyncio.Event())
    assert stats.samples == 30  # 1.5 s of 20 slots/s: the schedule still ends on time
    assert stats.skipped >= 8  # ~15 slots fell in the freeze
    assert stats.messages == stats.samples - stats.skipped
