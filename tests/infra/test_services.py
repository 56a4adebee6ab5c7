"""The test infrastructure itself: every fixture runs a real service that really answers."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from tests import services
from tests.faultproxy import ROOT, FaultProxy
from tests.services import (
    InfluxDB,
    Mosquitto,
    ServiceError,
    VictoriaMetrics,
    http_request,
)


class Collector:
    """A paho 2.x client that records what it receives."""

    def __init__(self, port: int, client_id: str = "", *, clean: bool = True) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.got = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.append(msg)
        self.got.set()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.client.subscribe(topic, qos)
        assert self.subscribed.wait(5), "no SUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(port: int, topic: str, payload: bytes, qos: int = 1) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=qos).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


# --- Mosquitto ----------------------------------------------------------------------------


def test_broker_delivers_published_message_to_subscriber(mosquitto: Mosquitto) -> None:
    sub = Collector(mosquitto.port)
    try:
        sub.subscribe("sensors/#")
        publish(mosquitto.port, "sensors/gh-1/temperature", b"21.5")
        assert sub.got.wait(5)
        assert (sub.messages[0].topic, sub.messages[0].payload) == (
            "sensors/gh-1/temperature",
            b"21.5",
        )
    finally:
        sub.close()


def test_broker_config_raises_limits_for_acknowledge_after_commit(mosquitto: Mosquitto) -> None:
    conf = mosquitto.config_path.read_text()
    assert "persistence true" in conf
    assert "max_inflight_messages 10000" in conf
    assert "max_queued_messages 100000" in conf
    assert f"listener {mosquitto.port} 127.0.0.1" in conf


def test_broker_restart_keeps_persistent_session_queued_qos1_message(mosquitto: Mosquitto) -> None:
    client_id = f"gw-{uuid.uuid4().hex[:8]}"
    sub = Collector(mosquitto.port, client_id, clean=False)
    sub.subscribe("sensors/#", qos=1)
    sub.close()  # offline: the broker queues for this session from now on

    publish(mosquitto.port, "sensors/gh-1/temperature", b"22.0", qos=1)
    old_pid = mosquitto.pid
    mosquitto.restart()  # SIGTERM: mosquitto saves its database on the way out
    assert mosquitto.pid != old_pid

    sub = Collector(mosquitto.port, client_id, clean=False)
    try:
        assert sub.got.wait(5), "queued QoS 1 message lost across the restart"
        assert sub.messages[0].payload == b"22.0"
        assert sub.messages[0].qos == 1
    finally:
        sub.close()


def test_shared_broker_answers(shared_mosquitto: Mosquitto) -> None:
    sub = Collector(shared_mosquitto.port)
    try:
        topic = f"infra/{uuid.uuid4().hex}"
        sub.subscribe(topic, qos=0)
        publish(shared_mosquitto.port, topic, b"x", qos=0)
        assert sub.got.wait(5)
    finally:
        sub.close()


def connack(port: int, username: str | None = None, password: str | None = None) -> str:
    """The broker's CONNACK reason for a paho 2.x client, as text."""
    reasons: list[str] = []
    done = threading.Event()

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        reasons.append(str(rc))
        done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = on_connect
    if username:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(5), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


def test_broker_with_password_file_refuses_anonymous(tmp_path: Path) -> None:
    pw = Mosquitto.write_password_file(tmp_path / "passwd", {"gw": "secret"})
    with Mosquitto(allow_anonymous=False, password_file=pw) as broker:
        assert connack(broker.port) == "Not authorized"
        assert connack(broker.port, "gw", "wrong") == "Not authorized"
        assert connack(broker.port, "gw", "secret") == "Success"


def test_service_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"mosquitto.*(exited|did not answer)") as err:
        Mosquitto(extra_config="this_is_not_an_option 1", workdir=tmp_path).start()
    assert "this_is_not_an_option" in str(err.value)  # the broker's own complaint


def test_killed_service_is_reaped_and_restartable(mosquitto: Mosquitto) -> None:
    pid = mosquitto.pid
    assert mosquitto.kill() == -9
    assert not os.path.exists(f"/proc/{pid}")  # reaped, not a zombie
    mosquitto.start()
    assert mosquitto.is_running()


# --- InfluxDB 1.x -------------------------------------------------------------------------


def test_influxdb_stores_line_protocol_point(influxdb: InfluxDB, influx_db: str) -> None:
    influxdb.write(
        influx_db, 'temperature,device=gh-1 value=21.0,state=true,text="on" 1700000000123456789'
    )
    [point] = influxdb.wait_for_count(influx_db, 1)
    assert point == {
        "measurement": "temperature",
        "time": 1700000000123456789,
        "tags": {"device": "gh-1"},
        "fields": {"value": 21, "state": True, "text": "on"},  # JSON shows the float 21.0 as 21
    }
    assert influxdb.field_types(influx_db, "temperature")["value"] == "float"


def test_influx_db_fixture_gives_each_test_an_empty_database(
    influxdb: InfluxDB, influx_db: str
) -> None:
    assert influxdb.points(influx_db) == []
    assert influx_db.startswith("test_")


def test_points_quote_odd_measurement_names(influxdb: InfluxDB, influx_db: str) -> None:
    influxdb.write(influx_db, 'we\\ird\\,"m\\ é🌡,device=a\\ b value=1 1')
    [point] = influxdb.points(influx_db, 'we\\ird,"m é🌡')
    assert point["tags"] == {"device": "a b"}


def test_two_influxd_run_side_by_side(influxdb: InfluxDB, fresh_influxdb: InfluxDB) -> None:
    assert influxdb.port != fresh_influxdb.port
    assert influxdb.extra_ports != fresh_influxdb.extra_ports  # RPC bind-address, not 8088
    for server in (influxdb, fresh_influxdb):
        status, _, _ = http_request("GET", f"{server.url}/ping")
        assert status == 204


def test_influxdb_restart_keeps_written_points(fresh_influxdb: InfluxDB) -> None:
    fresh_influxdb.create_database("d")
    fresh_influxdb.write("d", "m value=1 1")
    fresh_influxdb.restart()
    assert len(fresh_influxdb.points("d")) == 1


def test_influxdb_with_auth_refuses_anonymous_writes() -> None:
    with InfluxDB(auth_enabled=True) as server:
        server.create_database("d")
        status, _, _ = http_request("POST", f"{server.url}/write?db=d", b"m value=1 1")
        assert status == 401
        server.write("d", "m value=1 1")  # the helpers authenticate
        assert len(server.points("d")) == 1


# --- VictoriaMetrics ----------------------------------------------------------------------


def test_victoria_metrics_accepts_influx_v2_write_and_exports_it(
    victoria_metrics: VictoriaMetrics,
) -> None:
    measurement = f"m{uuid.uuid4().hex[:8]}"
    with InfluxDBClient(url=victoria_metrics.url, token="x", org="o") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="b", record=f"{measurement},device=d value=1.5 1700000000123456789"
        )
    [series] = victoria_metrics.export(f'{{__name__="{measurement}_value"}}')
    assert series["metric"]["device"] == "d"
    assert series["values"] == [1.5]
    assert series["timestamps"] == [1700000000123]  # milliseconds


# --- fault proxy --------------------------------------------------------------------------


def test_proxy_forwards_gzip_write_unchanged(
    fault_proxy: FaultProxy, influxdb: InfluxDB, influx_db: str
) -> None:
    body = gzip.compress(b"m,device=a value=1 1\nm,device=a value=2 2\n")
    status, _, _ = http_request(
        "POST", f"{fault_proxy.url}/write?db={influx_db}", body, {"Content-Encoding": "gzip"}
    )
    assert status == 204
    assert len(influxdb.points(influx_db)) == 2
    [req] = fault_proxy.requests("/write")
    assert (req["method"], req["query"]["db"], req["body_length"], req["lines"]) == (
        "POST",
        influx_db,
        len(body),
        2,
    )
    assert req["headers"]["Content-Encoding"] == "gzip"


def test_proxy_answers_503_with_retry_after_then_recovers(
    fault_proxy: FaultProxy, influxdb: InfluxDB, influx_db: str
) -> None:
    fault_proxy.set_fault(503, retry_after=3, count=2, path="/write")
    url = f"{fault_proxy.url}/write?db={influx_db}"
    answers = [http_request("POST", url, b"m value=1 1") for _ in range(3)]
    assert [a[0] for a in answers] == [503, 503, 204]
    assert answers[0][1]["Retry-After"] == "3"
    assert [r["status"] for r in fault_proxy.requests()] == [503, 503, 204]
    assert len(influxdb.points(influx_db)) == 1


def test_proxy_rejects_batch_with_bad_point(
    fault_proxy: FaultProxy, influxdb: InfluxDB, influx_db: str
) -> None:
    fault_proxy.set_fault(reject="BAD", count=None)
    url = f"{fault_proxy.url}/write?db={influx_db}"
    assert http_request("POST", url, b"m value=1 1\nBAD value=2 2")[0] == 400
    assert http_request("POST", url, b"m value=1 1")[0] == 204  # no bad line: forwarded
    assert http_request("POST", url, b"BAD value=2 2")[0] == 400  # still rejected
    assert len(influxdb.points(influx_db)) == 1


def test_proxy_partial_reject_writes_the_good_lines(
    fault_proxy: FaultProxy, influxdb: InfluxDB, influx_db: str
) -> None:
    fault_proxy.set_fault(reject="BAD", partial=True)
    body = gzip.compress(b"m value=1 1\nBAD value=2 2\nm value=3 3")
    status, _, answer = http_request(
        "POST", f"{fault_proxy.url}/write?db={influx_db}", body, {"Content-Encoding": "gzip"}
    )
    assert status == 400
    assert b"partial write" in answer
    assert [p["time"] for p in influxdb.points(influx_db)] == [1, 3]


def test_proxy_drops_connection_and_adds_latency(
    fault_proxy: FaultProxy, influxdb: InfluxDB, influx_db: str
) -> None:
    url = f"{fault_proxy.url}/write?db={influx_db}"
    fault_proxy.set_fault(drop="after")  # the write lands, the answer never comes
    with pytest.raises(http.client.RemoteDisconnected):
        http_request("POST", url, b"m value=1 1")
    assert len(influxdb.points(influx_db)) == 1
    fault_proxy.set_fault(delay=0.3)
    t0 = time.monotonic()
    assert http_request("POST", url, b"m value=2 2")[0] == 204
    assert time.monotonic() - t0 >= 0.3


def test_proxy_clear_removes_faults_and_requests(fault_proxy: FaultProxy, influx_db: str) -> None:
    fault_proxy.set_fault(401, count=None)
    url = f"{fault_proxy.url}/write?db={influx_db}"
    assert http_request("POST", url, b"m value=1 1")[0] == 401
    fault_proxy.clear(requests=True)
    assert fault_proxy.requests() == []
    assert http_request("POST", url, b"m value=1 1")[0] == 204


# --- lifecycle ----------------------------------------------------------------------------


def test_broker_sigkill_keeps_what_autosave_wrote(mosquitto: Mosquitto) -> None:
    client_id = f"gw-{uuid.uuid4().hex[:8]}"
    sub = Collector(mosquitto.port, client_id, clean=False)
    sub.subscribe("sensors/#", qos=1)
    sub.close()
    publish(mosquitto.port, "sensors/gh-1/temperature", b"23.0", qos=1)
    mosquitto.wait_for_save()  # a SIGKILL loses what came after the last save
    mosquitto.restart(hard=True)
    sub = Collector(mosquitto.port, client_id, clean=False)
    try:
        assert sub.got.wait(5), "message saved by autosave lost after SIGKILL"
    finally:
        sub.close()


def test_taken_fixed_port_fails_loudly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        broker = Mosquitto(port=s.getsockname()[1])
        with pytest.raises(ServiceError, match="already in use"):
            broker.start()
        broker.close()


def test_taken_free_port_is_retried_with_another(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        ports = iter([s.getsockname()[1]])
        real = services.free_port
        monkeypatch.setattr(services, "free_port", lambda: next(ports, None) or real())
        with Mosquitto() as broker:
            assert broker.port != s.getsockname()[1]
            assert "already in use" in broker.log_path.read_text()


def test_service_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "import sys, time; from tests.services import Mosquitto\n"
        "b = Mosquitto(workdir=sys.argv[1]).start(); print(b.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    with parent.stdout:
        pid = int(parent.stdout.readline())
    parent.kill()  # no atexit, no teardown: only PR_SET_PDEATHSIG can clean up
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid), f"mosquitto {pid} outlived its parent"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is dead; init reaps it


def test_shipped_mosquitto_config_starts(tmp_path: Path) -> None:
    shipped = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    for line in ("persistence true", "autosave_interval 60", "max_inflight_messages 10000"):
        assert f"\n{line}\n" in shipped

    passwords = Mosquitto.write_password_file(tmp_path / "passwd", {"outpost": "gw-pass"})
    acl = ROOT / "deploy/mosquitto/acl"

    class Shipped(Mosquitto):
        def write_config(self) -> None:
            self.data_dir.mkdir(exist_ok=True)
            text = shipped.replace("listener 1883", f"listener {self.port} 127.0.0.1")
            text = text.replace("./var/mosquitto/", f"{self.data_dir}/")
            text = text.replace("/etc/mosquitto/outpost.passwd", str(passwords))
            text = text.replace("/etc/mosquitto/outpost.acl", str(acl))
            self.config_path.write_text(text + "user root\n")

    with Shipped(workdir=tmp_path) as broker:
        assert connack(broker.port, "outpost", "gw-pass") == "Success"
        assert connack(broker.port) != "Success"  # anonymous clients are refused


async def test_wait_for_count_async_lets_the_event_loop_run(
    influxdb: InfluxDB, influx_db: str
) -> None:
    async def write_later() -> None:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(influxdb.write, influx_db, "m value=1 1")

    writer = asyncio.create_task(write_later())  # stands in for a gateway on the same loop
    rows = await influxdb.wait_for_count_async(influx_db, 1, timeout=5)
    await writer
    assert len(rows) == 1
    assert influxdb.count("no_such_database") == 0


def test_proxy_drops_connection_while_upstream_is_down(fresh_influxdb: InfluxDB) -> None:
    with FaultProxy(fresh_influxdb.url) as proxy:
        fresh_influxdb.create_database("d")
        url = f"{proxy.url}/write?db=d"
        assert http_request("POST", url, b"m value=1 1")[0] == 204
        fresh_influxdb.stop()
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            http_request("POST", url, b"m value=2 2")
        fresh_influxdb.start()
        assert http_request("POST", url, b"m value=3 3")[0] == 204  # no stale pooled connection
        assert [r.get("upstream_error") is not None for r in proxy.requests()] == [
            False,
            True,
            False,
        ]


def test_broker_tls_listener_serves_mqtt_over_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    openssl = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    san = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [*openssl, "-nodes", "-days", "1", *san, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    tls = {"cafile": cert, "certfile": cert, "keyfile": key}
    with Mosquitto(tls=tls) as broker:
        assert broker.tls_port != broker.port
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.tls_set(ca_certs=str(cert))
        connected = threading.Event()
        client.on_connect = lambda *a: connected.set()
        client.connect("127.0.0.1", broker.tls_port)
        client.loop_start()
        try:
            assert connected.wait(5), broker.log_tail()
        finally:
            client.disconnect()
            client.loop_stop()


def test_influx_db_name_is_not_created_yet(influxdb: InfluxDB, influx_db_name: str) -> None:
    assert influx_db_name not in influxdb.databases()
    influxdb.create_database(influx_db_name)  # what the writer under test would do
