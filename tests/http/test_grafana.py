"""The provisioned Grafana set-up, checked without Grafana (it cannot run here):

- the files hold what Grafana needs (schema version, datasource uids that exist, unique
  panel ids, the provisioning paths docker-compose mounts);
- every InfluxQL query of the dashboard (panels, annotations, variables) runs against a
  real influxd holding demo data written with the gateway's own line-protocol encoder,
  and returns rows — Grafana's macros ($timeFilter, $__interval, $metric, $device)
  expanded here the way Grafana expands them;
- every Prometheus query runs against a real VictoriaMetrics (PromQL-compatible) that
  scraped the test gateway's /metrics with deploy/prometheus/prometheus.yml.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.model import Reading
from gateway.influx.lineproto import LineEncoder
from tests.http.conftest import TOKEN, LiveGateway
from tests.services import InfluxDB, VictoriaMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPO = DEPLOY.parent
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "outpost.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"
PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "outpost.yaml"
DEVICES = ["gh-1", "gh-2", "bench-1"]
METRICS = ["temperature", "humidity"]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def datasource_uids() -> dict[str, str]:
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    return {d["uid"]: d["type"] for d in doc["datasources"]}


def _targets(dash: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, datasource, query dict) for every panel target, annotation and variable."""
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target.get("datasource") or panel["datasource"], target
    for ann in dash["annotations"]["list"]:
        if ann.get("builtIn"):
            continue
        yield f"annotation {ann['name']}", ann["datasource"], ann
    for var in dash["templating"]["list"]:
        yield f"variable {var['name']}", var["datasource"], var


def test_dashboard_and_provisioning_hold_what_grafana_needs() -> None:
    dash = dashboard()
    uids = datasource_uids()
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    assert uids == {"outpost-influxdb": "influxdb", "outpost-prometheus": "prometheus"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in uids, panel["title"]
    seen = 0
    for where, ds, _target in _targets(dash):
        assert uids.get(ds["uid"]) == ds["type"], where
        seen += 1
    assert seen >= 15
    providers = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))["providers"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    dashboards_dir = providers[0]["options"]["path"]
    assert mounts[f"{dashboards_dir}/outpost.json"] == "./deploy/grafana/dashboards/outpost.json"
    for kind, path in (("datasources", DATASOURCES), ("dashboards", PROVIDERS)):
        target = f"/etc/grafana/provisioning/{kind}/{path.name}"
        assert REPO / mounts[target] == path, target
    influx = compose["services"]["influxdb"]
    assert any(v.startswith("./deploy/influxdb/10-outpost-dbrp.sh:/docker-entrypoint-initdb.d/")
               for v in influx["volumes"])
    assert "prometheus" in compose["services"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["gateway:8080"]


def _regex_all(values: list[str]) -> str:
    # Grafana formats a multi-value/All variable inside /…/ as an escaped alternation.
    return "(" + "|".join(re.sub(r"([\\^$.|?*+()\[\]{}-])", r"\\\1", v) for v in values) + ")"


def expand_influxql(query: str) -> str:
    return (query.replace("$timeFilter", "time > now() - 6h")
            .replace("$__interval", "1m")
            .replace("$metric", _regex_all(METRICS))
            .replace("$device", _regex_all(DEVICES)))


@pytest.fixture
def demo_db(influxdb: InfluxDB) -> Iterator[str]:
    """Two hours of readings, alerts and commands, as the gateway writes them."""
    db = f"grafana_{uuid.uuid4().hex[:10]}"
    influxdb.create_database(db)
    encoder = LineEncoder()
    now = time.time_ns()
    lines = []
    for minute in range(120):
        ts = now - (120 - minute) * 60_000_000_000
        for i, device in enumerate(DEVICES):
            lines.append(encoder.encode(Reading(device, "temperature", 20.0 + i + minute / 20, ts)))
            lines.append(encoder.encode(Reading(device, "humidity", 50.0 + i, ts)))
    for minute, state in ((30, "firing"), (45, "resolved"), (90, "firing")):
        ts = now - (120 - minute) * 60_000_000_000
        lines.append(encoder.encode_point(
            "outpost_alerts", {"rule": "greenhouse_hot", "device": "gh-1", "state": state,
                               "severity": "warning"},
            {"message": f"gh-1 is {state}", "value": 31.0}, ts))
        lines.append(encoder.encode_point(
            "outpost_commands", {"device": "fan-1", "outcome": "acked", "rule": "greenhouse_hot"},
            {"id": f"c{minute}", "settings": "speed=100"}, ts + 1_000_000))
    influxdb.write(db, "\n".join(lines))
    yield db
    if influxdb.is_running():
        influxdb.drop_database(db)


def _rows(answer: dict[str, Any]) -> int:
    return sum(len(s.get("values") or []) for r in answer["results"] for s in r.get("series", []))


def test_every_influxql_query_returns_rows_from_demo_data(influxdb: InfluxDB, demo_db: str) -> None:
    checked = []
    for where, ds, target in _targets(dashboard()):
        if ds["type"] != "influxdb":
            continue
        query = expand_influxql(target["query"])
        assert not re.search(r"\$[A-Za-z_]", query), (where, query)  # every macro expanded
        rows = _rows(influxdb.query(query, demo_db))
        assert rows > 0, f"{where}: no rows from {query}"
        checked.append(where)
    assert len(checked) >= 8, checked
    # the variables list what the panels repeat over
    metrics = influxdb.query(expand_influxql(dashboard()["templating"]["list"][0]["query"]),
                             demo_db)
    names = {v[0] for s in metrics["results"][0]["series"] for v in s["values"]}
    regex = dashboard()["templating"]["list"][0]["regex"].strip("/")  # applied by Grafana (JS)
    assert {n for n in names if re.fullmatch(regex, n)} == set(METRICS)


def test_every_prometheus_query_returns_series_from_a_real_scrape(
        live_gateway: LiveGateway, tmp_path: Path) -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scrape["global"]["scrape_interval"] = "1s"
    job = scrape["scrape_configs"][0]
    job["static_configs"][0]["targets"] = [live_gateway.url.removeprefix("http://")]
    token = tmp_path / "outpost-api.token"  # where docker-compose.yml writes the token
    token.write_text(TOKEN, encoding="utf-8")
    job["authorization"]["credentials_file"] = str(token)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape))
    # Prometheus-only keys (evaluation_interval) are not VictoriaMetrics's business.
    with VictoriaMetrics(extra_args=[f"-promscrape.config={config}",
                                     "-promscrape.config.strictParse=false"]) as vm:
        exprs = [(where, t["expr"].replace("$__rate_interval", "1m"))
                 for where, ds, t in _targets(dashboard()) if ds["type"] == "prometheus"]
        assert len(exprs) >= 8
        deadline = time.monotonic() + 20
        missing = exprs
        while missing and time.monotonic() < deadline:
            time.sleep(1)
            for i in range(70):  # increases between scrapes, for rate() and the histogram
                live_gateway.publisher.publish(f"sensors/prom-{i % 5}/temperature", "21")
            vm.flush()
            missing = [(w, e) for w, e in exprs if not vm.query(e)["result"]]
        assert not missing, missing
