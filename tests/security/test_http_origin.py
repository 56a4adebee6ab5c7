"""DNS rebinding and the browser's other ways in, against the real gateway process.

A web page in the operator's browser (``evil.example``) points its own name at the
gateway's address; the browser then sends the page's requests to the gateway as
``Host: evil.example`` and lets the page read the answers. The gateway used to
serve any Host, and reading is open on loopback. Here: a foreign Host gets 421,
the gateway's own names are served, every answer carries the security headers (no
CORS), the dashboard runs under its Content-Security-Policy in Chromium, and a
gateway on a network address refuses to start without a token and then needs the
token for reading.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import rawhttp
from tests.gateway.harness import GatewayProcess
from tests.http.conftest import TOKEN, start_gateway
from tests.services import InfluxDB, Mosquitto, free_port

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # evil.example is the gateway: the state right after a rebinding
                 "--host-resolver-rules=MAP evil.example 127.0.0.1"]

# (method, target, extra headers, body): every route, static files, and errors
EVERY_KIND_OF_ANSWER: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/", {}, None),
    ("GET", "/static/app.js", {}, None),
    ("GET", "/static/style.css", {}, None),
    ("GET", "/static/icon.svg", {}, None),
    ("GET", "/static/nothing-here.js", {}, None),  # 404 from the static files
    ("GET", "/static/../server.py", {}, None),
    ("GET", "/healthz", {}, None),
    ("GET", "/readyz", {}, None),
    ("GET", "/metrics", {}, None),
    *[("GET", f"/api/v1/{name}", {}, None) for name in (
        "status", "devices", "readings", "alerts", "rules", "events", "commands", "silences",
        "stream")],
    ("GET", "/api/v1/series", {}, None),  # 400: no device
    ("GET", "/api/v1/series?device=nobody&metric=x", {}, None),  # 404
    ("GET", "/api/v1/events?limit=many", {}, None),  # 400
    ("POST", "/api/v1/commands", {}, b"{}"),  # 401: no token
    ("POST", "/api/v1/commands", AUTH, b"[not json"),  # 400
    ("POST", "/api/v1/silences", AUTH, b'{"for": "1h", "rule": "nothing-' + b'x"}'),  # 201
    ("DELETE", "/api/v1/silences/abc", AUTH, None),  # 400
    ("POST", "/api/v1/rules/reload", AUTH, b""),
    ("PUT", "/api/v1/status", {}, b"{}"),  # 405
    ("OPTIONS", "/api/v1/commands", {"Access-Control-Request-Method": "POST"}, None),
    ("GET", "/no/such/page", {}, None),  # 404
]


@pytest.fixture(scope="module")
def gateway(shared_mosquitto: Mosquitto, influxdb: InfluxDB,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, int]]:
    db = f"origin_{uuid.uuid4().hex[:10]}"
    influxdb.create_database(db)
    process, config = start_gateway(tmp_path_factory.mktemp("origin"), shared_mosquitto,
                                    influxdb, db)
    try:
        yield process, int(config["http"]["listen"].rpartition(":")[2])
    finally:
        assert process.stop() == 0
        influxdb.drop_database(db)
    assert "Traceback" not in process.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed (make test-deps installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.parametrize("target", ["/", "/static/app.js", "/healthz", "/metrics",
                                    "/api/v1/status", "/api/v1/events", "/api/v1/stream"])
def test_a_foreign_host_name_gets_421_and_the_gateways_own_names_are_served(
        gateway: tuple[GatewayProcess, int], target: str) -> None:
    _, port = gateway
    answer = rawhttp.request(port, "GET", target, host="evil.example", headers=AUTH)
    assert answer.status == 421
    message = json.loads(answer.body)["error"]
    assert "'evil.example'" in message and "http.allowed_hosts" in message
    for host in ("127.0.0.1", "localhost", "LOCALHOST.", "[::1]"):
        assert rawhttp.request(port, "GET", target, host=host, headers=AUTH).status == 200, host


def test_a_rebinding_page_in_chromium_cannot_read_the_gateway(
        gateway: tuple[GatewayProcess, int], browser: Browser) -> None:
    """Right after the rebinding, evil.example resolves to the gateway: whatever runs at
    that origin reads the gateway as its own server, with Host: evil.example.
    (Chromium's Private Network Access would stop the attacker's own page from some
    of this; other browsers have nothing of the kind, so the gateway must refuse.)"""
    _, port = gateway
    page = browser.new_page()
    landing = page.goto(f"http://evil.example:{port}/")
    assert landing is not None and landing.status == 421
    stolen = page.evaluate("""async () => {
        const r = await fetch("/api/v1/status");
        return {status: r.status, body: await r.text()};
    }""")
    assert stolen["status"] == 421
    assert "version" not in stolen["body"] and "evil.example" in stolen["body"]
    page.close()


@pytest.mark.parametrize("method, target, headers, body", EVERY_KIND_OF_ANSWER)
def test_every_answer_carries_the_security_headers_and_no_cors(
        gateway: tuple[GatewayProcess, int], method: str, target: str,
        headers: dict[str, str], body: bytes | None) -> None:
    _, port = gateway
    answer = rawhttp.request(port, method, target, body=body,
                             headers={**headers, "Origin": "http://evil.example"})
    for name, value in SECURITY_HEADERS.items():
        assert answer.header(name) == value, (name, answer.status)
    assert "default-src 'self'" in (answer.header("content-security-policy") or "")
    assert not [name for name in answer.headers if name.startswith("access-control-")]


def test_a_foreign_host_answer_carries_the_security_headers_too(
        gateway: tuple[GatewayProcess, int]) -> None:
    _, port = gateway
    answer = rawhttp.request(port, "GET", "/", host="evil.example")
    assert answer.status == 421
    for name, value in SECURITY_HEADERS.items():
        assert answer.header(name) == value


def _open_dashboard(browser: Browser, port: int) -> Page:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/")
    expect(page.locator("#conn")).to_have_text("live", timeout=5000)
    return page


def test_the_dashboard_runs_under_its_policy_which_refuses_injected_script(
        gateway: tuple[GatewayProcess, int], browser: Browser) -> None:
    _, port = gateway
    page = _open_dashboard(browser, port)
    violated = page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation",
                                  (e) => resolve(e.effectiveDirective), {once: true});
        const s = document.createElement("script");
        s.textContent = "window.injected = true";
        document.body.append(s);
    })""")
    assert violated == "script-src-elem"
    assert page.evaluate("window.injected === undefined")
    page.close()


@contextlib.contextmanager
def _site(page: str) -> Iterator[str]:
    """Another web site on this machine (its own port: another origin) serving ``page``."""
    body = page.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_cannot_frame_the_dashboard(
        gateway: tuple[GatewayProcess, int], browser: Browser) -> None:
    _, port = gateway
    dashboard = f"http://127.0.0.1:{port}/"
    page = browser.new_page()
    with _site(f'<!doctype html><iframe src="{dashboard}"></iframe>') as framer, \
            page.expect_response(dashboard) as framed:
        page.goto(framer)
    assert framed.value.status == 200  # the browser got the page, and refused to show it
    page.wait_for_timeout(1000)
    child = page.frames[1]
    assert child.query_selector("#conn") is None, child.url
    page.close()


# --- http.listen beyond loopback -----------------------------------------------------------


def _config_file(folder: Path, http: dict[str, Any]) -> Path:
    lines = ["state_dir: ./var", "http:"] + [f"  {key}: {value}" for key, value in http.items()]
    path = folder / "outpost.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_network_listen_without_a_token_is_refused_at_start(tmp_path: Path) -> None:
    listen = f"0.0.0.0:{free_port()}"
    config = _config_file(tmp_path, {"listen": listen})
    where = re.escape(f"{config}:3:")
    expected = re.compile(rf"^{where}\d+: http\.listen: {re.escape(listen)} is reachable from "
                          r"the network, .*set http\.token_file", re.MULTILINE)
    run = subprocess.run([sys.executable, "-m", "gateway", "run", "-c", str(config)],
                         capture_output=True, text=True, timeout=15, cwd=tmp_path)
    assert run.returncode == 2 and expected.search(run.stderr), run.stderr
    check = subprocess.run([sys.executable, "-m", "gateway", "config", "check", "-c", str(config)],
                           capture_output=True, text=True, timeout=15, cwd=tmp_path)
    assert check.returncode == 1 and expected.search(check.stderr), check.stderr


def test_on_a_network_listen_reading_needs_the_token(
        shared_mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: str, tmp_path: Path) -> None:
    port = free_port()
    process, _ = start_gateway(tmp_path, shared_mosquitto, influxdb, influx_db,
                               listen=f"0.0.0.0:{port}")
    try:
        for target in ("/api/v1/status", "/api/v1/devices", "/metrics"):
            assert rawhttp.request(port, "GET", target).status == 401, target
            assert rawhttp.request(port, "GET", target, headers=AUTH).status == 200, target
        assert rawhttp.request(port, "GET", "/").status == 200  # the page carries no data
        # Reached by an address of this machine: served (a page cannot make a browser send an
        # address as Host for a name of its own); by a foreign name: refused.
        assert rawhttp.request(port, "GET", "/api/v1/status", host="192.0.2.7",
                               headers=AUTH).status == 200
        assert rawhttp.request(port, "GET", "/api/v1/status", host="evil.example",
                               headers=AUTH).status == 421
    finally:
        process.stop()
