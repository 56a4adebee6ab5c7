"""Attacks on the HTTP server's connections, against the real gateway process.

Connections that never finish a request head (silent, or dripping a header line a
second) used to stay open for an hour each, so a few thousand of them, without any
token, took every file descriptor; then every accept failed and asyncio logged a
traceback per failure (measured: 1.6 MB of log in 5 s). Here: they get 408 after
``http.header_timeout``, past ``http.max_connections`` a new connection gets 503
while an honest client is served again once slots free, a client that stops
reading is cut off after ``http.idle_timeout``, the accept error is logged once per
interval with a count, and the soft open-files limit is raised at start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests import rawhttp
from tests.gateway.harness import GatewayProcess, gateway_config, write_config
from tests.http.conftest import TOKEN, start_gateway
from tests.services import InfluxDB, Mosquitto

HEADER_TIMEOUT = 10.0  # the default http.header_timeout
MAX_CONNECTIONS = 256  # the default http.max_connections
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options",
                    "referrer-policy")


def _port(config: dict[str, Any]) -> int:
    return int(config["http"]["listen"].rpartition(":")[2])


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _status(port: int) -> rawhttp.Answer:
    return rawhttp.request(port, "GET", "/api/v1/status", headers=AUTH)


def _metric(port: int, name: str, labels: str = "") -> float:
    text = rawhttp.request(port, "GET", "/metrics", headers=AUTH).body.decode()
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def _assert_security_headers(answer: rawhttp.Answer) -> None:
    for name in SECURITY_HEADERS:
        assert answer.header(name), f"{name} missing from a {answer.status} answer"


@pytest.fixture
def gateway(shared_mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str,
            tmp_path: Path) -> Iterator[tuple[GatewayProcess, int]]:
    """A gateway with the default connection limits."""
    process, config = start_gateway(tmp_path, shared_mosquitto, influxdb, influx_db)
    try:
        yield process, _port(config)
    finally:
        process.stop()


def _watch_until_closed(
        socks: list[socket.socket], drip: list[socket.socket], deadline: float,
        started: float) -> dict[socket.socket, tuple[float, bytes]]:
    """Read every socket until the server closes it; send one header line a second on
    those in ``drip``. Returns, per closed socket, (seconds after ``started``, bytes)."""
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytes] = {}
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        received[sock] = b""
    closed: dict[socket.socket, tuple[float, bytes]] = {}
    next_drip = time.monotonic() + 1.0
    while len(closed) < len(socks) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                received[sock] += data
            else:
                closed[sock] = (time.monotonic() - started, received[sock])
                selector.unregister(sock)
        if time.monotonic() >= next_drip:
            next_drip += 1.0
            for sock in drip:
                if sock not in closed:
                    with contextlib.suppress(OSError):  # closed by the server: read next
                        sock.send(b"X-Drip: 1\r\n")
    selector.close()
    return closed


def test_connections_without_a_request_head_get_408_after_the_header_timeout(
        gateway: tuple[GatewayProcess, int]) -> None:
    _, port = gateway
    started = time.monotonic()
    silent = [_connect(port) for _ in range(40)]
    slow = [_connect(port) for _ in range(40)]  # slowloris: a header line a second, forever
    for sock in slow:
        sock.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        assert _status(port).status == 200  # an honest client meanwhile
        closed = _watch_until_closed(silent + slow, slow, started + HEADER_TIMEOUT + 5, started)
        assert len(closed) == 80, f"{80 - len(closed)} of 80 half-open connections still open"
        for after, data in closed.values():
            assert HEADER_TIMEOUT - 0.5 <= after <= HEADER_TIMEOUT + 3, after
            answer = rawhttp.parse(data)
            assert answer.status == 408
            assert "http.header_timeout" in json.loads(answer.body)["error"]
            _assert_security_headers(answer)
        assert _metric(port, "outpost_http_connections_closed_total",
                       '{reason="header_timeout"}') == 80
    finally:
        for sock in silent + slow:
            sock.close()


def test_past_max_connections_new_ones_get_503_until_slots_free(
        gateway: tuple[GatewayProcess, int]) -> None:
    _, port = gateway
    opened = time.monotonic()
    held = [_connect(port) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)  # every one accepted by the server
        refused = _status(port)
        assert refused.status == 503
        assert "http.max_connections" in json.loads(refused.body)["error"]
        assert refused.header("retry-after") == "1"
        _assert_security_headers(refused)
        # The held connections run into the header timeout; the honest client is served then.
        while (answer := _status(port)).status != 200:
            assert answer.status == 503
            assert time.monotonic() - opened < HEADER_TIMEOUT + 5, "never served again"
            time.sleep(0.25)
        assert time.monotonic() - opened >= HEADER_TIMEOUT - 0.5
        assert json.loads(answer.body)["version"]
        assert _metric(port, "outpost_http_connections_closed_total",
                       '{reason="max_connections"}') >= 1
        deadline = time.monotonic() + 5  # the last of the held ones time out just after
        while _metric(port, "outpost_http_connections_closed_total",
                      '{reason="header_timeout"}') < MAX_CONNECTIONS:
            assert time.monotonic() < deadline, "not every held connection timed out"
            time.sleep(0.2)
    finally:
        for sock in held:
            sock.close()


def test_out_of_file_descriptors_the_accept_error_is_logged_once_per_interval(
        gateway: tuple[GatewayProcess, int]) -> None:
    process, port = gateway
    assert process.proc is not None
    pid = process.proc.pid
    limit = len(os.listdir(f"/proc/{pid}/fd")) + 4
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
    before = len(process.log())
    flood = [_connect(port) for _ in range(60)]  # 4 accepted, the rest fail with EMFILE
    try:
        time.sleep(12.5)  # longer than the 10 s log interval
        grown = process.log()[before:]
        assert "Too many open files" in grown  # the flood happened
        reports = grown.count("socket.accept() out of system resource")
        assert 1 <= reports <= 2, f"{reports} reports of the accept error in 12.5 s"
        if reports == 2:
            assert re.search(r"\(and \d+ more since the last report\)", grown), grown[-2000:]
        assert len(grown.splitlines()) <= 20, f"the log grew by {len(grown)} bytes"
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # the descriptors free again: served
        try:
            if _status(port).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "not served again after the flood"
        time.sleep(0.25)


def test_a_flood_of_malformed_requests_is_logged_once_per_interval(
        gateway: tuple[GatewayProcess, int]) -> None:
    """aiohttp logs every request it cannot parse, with a traceback."""
    process, port = gateway
    before = len(process.log())
    for _ in range(300):
        with _connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
            assert rawhttp.parse(rawhttp.read_until_closed(sock, 5)).status == 400
    time.sleep(0.5)
    grown = process.log()[before:]
    assert grown.count("Error handling request") == 1, grown[:3000]
    assert len(grown.splitlines()) <= 20, f"the log grew by {len(grown)} bytes"
    assert _status(port).status == 200


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit_at_start(
        shared_mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    config = gateway_config(shared_mosquitto.port, influxdb.url, influx_db)
    path = write_config(tmp_path / "outpost.yaml", config)
    process = GatewayProcess(path, wrapper=["prlimit", "--nofile=512:4096", "--"])
    with process:
        process.wait_log("HTTP API on")
        assert process.proc is not None
        limits = Path(f"/proc/{process.proc.pid}/limits").read_text()
        assert re.search(r"^Max open files\s+4096\s+4096\s", limits, re.MULTILINE), limits
        assert "open files: at most 4096 (raised from 512 to the hard limit)" in process.log()


# --- http.idle_timeout -------------------------------------------------------------------

IDLE = 2.0


@pytest.fixture(scope="module")
def idle_gateway(shared_mosquitto: Mosquitto, influxdb: InfluxDB,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, int]]:
    db = f"idle_{uuid.uuid4().hex[:10]}"
    influxdb.create_database(db)
    process, config = start_gateway(tmp_path_factory.mktemp("idle"), shared_mosquitto,
                                    influxdb, db, idle_timeout=f"{IDLE:g}s")
    try:
        yield process, _port(config)
    finally:
        assert process.stop() == 0
        influxdb.drop_database(db)
    assert "Traceback" not in process.log()  # cut-off connections are no errors


def test_a_kept_alive_connection_without_a_next_request_is_closed_after_the_idle_timeout(
        idle_gateway: tuple[GatewayProcess, int]) -> None:
    _, port = idle_gateway
    with _connect(port) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        answered = time.monotonic()
        data = rawhttp.read_until_closed(sock, IDLE + 5)
    assert rawhttp.parse(data).status == 200
    assert IDLE - 0.5 <= time.monotonic() - answered <= IDLE + 2


def test_a_request_body_that_stops_arriving_gets_408_after_the_idle_timeout(
        idle_gateway: tuple[GatewayProcess, int]) -> None:
    _, port = idle_gateway
    with _connect(port) as sock:
        sock.sendall(f"POST /api/v1/silences HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                     'Content-Length: 100\r\n\r\n{"rule": '.encode())
        sent = time.monotonic()
        answer = rawhttp.parse(rawhttp.read_until_closed(sock, IDLE + 15))
    assert answer.status == 408
    assert "http.idle_timeout" in json.loads(answer.body)["error"]
    assert time.monotonic() - sent >= IDLE - 0.5


def test_a_dashboard_that_stops_reading_the_live_stream_is_cut_off_after_the_idle_timeout(
        idle_gateway: tuple[GatewayProcess, int], shared_mosquitto: Mosquitto) -> None:
    """The stream's diffs pile up in the socket (the kernel takes up to 4 MiB) until
    writing blocks; then the connection is aborted after the idle timeout instead of
    holding its slot for ever."""
    _, port = idle_gateway
    stalled_before = _metric(port, "outpost_http_connections_closed_total", '{reason="stalled"}')
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read it
    sock.connect(("127.0.0.1", port))
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                            client_id=f"stall-{uuid.uuid4().hex[:6]}")
    publisher.connect("127.0.0.1", shared_mosquitto.port)
    publisher.loop_start()
    device = f"stall-{uuid.uuid4().hex[:6]}"
    try:
        sock.sendall(f"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        deadline = time.monotonic() + 60
        # Each round changes 4000 series: a diff of ~600 KB every half second.
        while _metric(port, "outpost_http_connections_closed_total",
                      '{reason="stalled"}') == stalled_before:
            assert time.monotonic() < deadline, "a stream nobody reads was never cut off"
            for i in range(4000):
                publisher.publish(f"sensors/{device}/m{i:04d}", str(time.monotonic()), qos=0)
            time.sleep(0.6)
        # Aborted: what the kernel had queued arrives, then the end (a live stream never ends).
        assert rawhttp.read_until_closed(sock, 10).startswith(b"HTTP/1.1 200")
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        sock.close()
