"""The JSON API of a running gateway (real broker, real influxd), as curl would see it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.http.conftest import TOKEN, LiveGateway, read_stream, start_gateway, unique
from tests.services import InfluxDB, Mosquitto, http_request


def test_devices_and_latest_readings_appear_as_devices_publish(live_gateway: LiveGateway) -> None:
    gw = live_gateway
    device = unique("bench")
    gw.publish(device, "humidity", 41.5)
    gw.publish(device, "temperature", 21.25)
    found = gw.wait_for("/api/v1/devices", lambda body: [
        d for d in body["devices"] if d["device"] == device and len(d["metrics"]) == 2])
    assert found[0]["online"] is True
    assert found[0]["last_seen"].endswith("Z")
    assert sorted(found[0]["metrics"]) == ["humidity", "temperature"]
    readings = gw.wait_for(f"/api/v1/readings?device={device}",
                           lambda body: len(body["readings"]) == 2 and body["readings"])
    assert [(r["metric"], r["value"]) for r in readings] == [("humidity", 41.5),
                                                             ("temperature", 21.25)]


def test_series_returns_the_last_hour_downsampled(live_gateway: LiveGateway) -> None:
    gw = live_gateway
    device = unique("spark")
    for value in (10, 20, 30):  # within one 10 s bucket: one point, their mean
        gw.publish(device, "level", value)
    body = gw.wait_for(f"/api/v1/series?device={device}&metric=level",
                       lambda b: b.get("value") == 30.0 and b)
    assert body["bucket_s"] == 10.0
    assert len(body["points"]) in (1, 2)  # two if the readings straddled a bucket edge
    assert abs(sum(v for _, v in body["points"]) / len(body["points"]) - 20) <= 10
    assert body["points"][-1][0] <= time.time()
    status, answer = gw.get(f"/api/v1/series?device={device}&metric=nope")
    assert status == 404 and "nope" in answer["error"]
    assert gw.get("/api/v1/series?device=x")[0] == 400


def test_alert_lifecycle_rules_state_and_trace_through_the_api(live_gateway: LiveGateway) -> None:
    gw = live_gateway
    device = unique("gh")
    gw.publish(device, "temperature", 31.5)
    alert = gw.wait_for("/api/v1/alerts", lambda b: next(
        (a for a in b["alerts"] if a["device"] == device and a["state"] == "firing"), None))
    assert alert["severity"] == "critical" and alert["value"] == 31.5
    assert alert["rule"] == "too_hot" and alert["trace_id"]
    rules = gw.wait_for("/api/v1/rules", lambda b: b)
    assert rules["valid"] is True and rules["errors"] == []
    too_hot = next(r for r in rules["rules"] if r["name"] == "too_hot")
    assert too_hot["devices"][device] == "firing" and too_hot["when"] == "value > 30"
    # reading → alert → command → ack, all under the reading's trace id
    kinds = gw.wait_for(f"/api/v1/events?trace={alert['trace_id']}",
                        lambda b: "command_acked" in (k := [e["kind"] for e in b["events"]]) and k)
    assert kinds.index("alert") < kinds.index("command") < kinds.index("command_acked")
    recent = gw.wait_for("/api/v1/commands", lambda b: b["recent"])
    assert any(c["device"] == "fan-1" and c["outcome"] == "acked" and c["set"] == {"speed": 100}
               for c in recent)

    gw.publish(device, "temperature", 25.0)
    gw.wait_for("/api/v1/alerts", lambda b: any(
        a["device"] == device and a["state"] == "resolved" for a in b["alerts"]))


def test_invalid_rule_files_are_reported_while_the_old_rules_keep_running(
        live_gateway: LiveGateway) -> None:
    gw = live_gateway
    good = gw.rules_path.read_text()
    try:
        gw.rules_path.write_text(good.replace("when: value > 30", "when: value >"))
        body = gw.wait_for("/api/v1/rules", lambda b: not b["valid"] and b)
        assert any("rules.yaml:" in line for line in body["errors"])
        assert [r["name"] for r in body["rules"]] == ["too_hot"]
    finally:
        gw.rules_path.write_text(good)
    gw.wait_for("/api/v1/rules", lambda b: b["valid"])


def test_changes_need_the_bearer_token_and_reading_does_not(live_gateway: LiveGateway) -> None:
    gw = live_gateway
    assert gw.post("/api/v1/rules/reload", {}, token=None)[0] == 401
    assert gw.post("/api/v1/rules/reload", {}, token="wrong")[0] == 401
    assert gw.post("/api/v1/rules/reload", {})[0] == 200
    status, silence = gw.post("/api/v1/silences", {"rule": "too_hot", "for": "1m"})
    assert status == 201
    status, _, _ = http_request("DELETE", f"{gw.url}/api/v1/silences/{silence['id']}")
    assert status == 401
    for path in ("/api/v1/status", "/api/v1/devices", "/api/v1/readings", "/api/v1/alerts",
                 "/api/v1/rules", "/api/v1/events", "/api/v1/commands", "/api/v1/silences",
                 "/metrics", "/healthz", "/readyz", "/", "/static/app.js"):
        assert gw.get(path)[0] == 200, path


def test_status_summarises_the_gateway(live_gateway: LiveGateway) -> None:
    gw = live_gateway
    gw.publish(unique("st"), "temperature", 20)
    body = gw.wait_for("/api/v1/status", lambda b: b["readings"] and b["influx_up"] and b)
    assert body["mqtt_connected"] is True and body["rules"] == 1
    assert body["devices"] >= body["devices_online"] >= 1
    assert body["started_at"].endswith("Z") and body["version"]
    assert body["outbox"] == {"readings": 0, "bytes": body["outbox"]["bytes"],
                              "oldest_age_s": 0.0, "degraded": False}  # InfluxDB is up


def test_metrics_parse_and_every_name_is_outpost(live_gateway: LiveGateway) -> None:
    gw = live_gateway
    gw.publish(unique("m"), "temperature", 20)
    gw.wait_for("/api/v1/status", lambda b: b["readings"])
    status, text = gw.get("/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families and all(name.startswith("outpost_") for name in families), sorted(families)
    for name in ("outpost_messages", "outpost_deadletters", "outpost_rule_evaluation_seconds",
                 "outpost_alerts", "outpost_commands", "outpost_influx_write_seconds",
                 "outpost_influx_errors", "outpost_influx_buffered_readings", "outpost_influx_up",
                 "outpost_mqtt_connected", "outpost_mqtt_reconnects", "outpost_live_series",
                 "outpost_http_stream_clients", "outpost_http_requests", "outpost_info",
                 "outpost_pipeline_pending_messages"):
        assert name in families, name
    up = {s.name: s.value for s in families["outpost_mqtt_connected"].samples}
    assert up["outpost_mqtt_connected"] == 1.0
    routes = {s.labels["route"] for s in families["outpost_http_requests"].samples}
    assert "/api/v1/status" in routes


def test_stream_sends_a_snapshot_then_coalesced_diffs(live_gateway: LiveGateway) -> None:
    gw = live_gateway
    device = unique("live")
    gw.publish(device, "temperature", 20)
    gw.wait_for("/api/v1/readings", lambda b: any(r["device"] == device for r in b["readings"]))
    started = time.monotonic()
    for i in range(50):
        gw.publish(device, "temperature", 20 + i / 10)
    events = read_stream(gw.url + "/api/v1/stream", 3)
    assert events[0][0] == "snapshot"
    snapshot = events[0][1]
    assert {"devices", "readings", "alerts", "rules", "commands", "health"} <= set(snapshot)
    row = next(r for r in snapshot["readings"] if r["device"] == device)
    assert row["spark"], row
    assert all(name == "diff" for name, _ in events[1:])
    # 50 readings did not make 50 messages: at most one diff per 0.5 s
    assert time.monotonic() - started >= 0.9
    latest = [r for _, d in events for r in d.get("readings", []) if r["device"] == device]
    assert latest[-1]["value"] == 24.9


def test_read_token_required_closes_reading_but_not_the_page(
        shared_mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    db = "readtoken_" + unique("x").replace("-", "")
    influxdb.create_database(db)
    process, config = start_gateway(tmp_path, shared_mosquitto, influxdb, db,
                                    read_token_required=True)
    try:
        url = f"http://{config['http']['listen']}"
        _check_read_token(url)
        # a dashboard still connected does not hold up the shutdown
        stream = threading.Thread(target=read_stream, args=(url + "/api/v1/stream", 100, 30.0,
                                                            {"Authorization": f"Bearer {TOKEN}"}))
        stream.start()
        time.sleep(0.5)
    finally:
        started = time.monotonic()
        assert process.stop() == 0
        influxdb.drop_database(db)
    stream.join(5)
    assert not stream.is_alive() and time.monotonic() - started < 5


def _check_read_token(url: str) -> None:
    for path in ("/api/v1/devices", "/api/v1/stream", "/metrics"):
        assert http_request("GET", url + path)[0] == 401, path
        auth = {"Authorization": f"Bearer {TOKEN}"}
        if path != "/api/v1/stream":
            assert http_request("GET", url + path, headers=auth)[0] == 200, path
    for path in ("/", "/static/style.css", "/healthz"):
        assert http_request("GET", url + path)[0] == 200, path

