"""The CLI's client of the gateway's HTTP API, against a stand-in server."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.cli.api import ApiError, GatewayApi, base_url
from gateway.cli.common import command_name, load_config_or_report
from gateway.config.schema import HttpConfig


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        status = 403 if self.path.startswith("/forbidden") else 200
        body = json.dumps(
            {"method": self.command, "auth": self.headers.get("Authorization"), "sent": sent}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_gateway_listening_on_every_interface_is_reached_on_loopback() -> None:
    assert base_url("0.0.0.0:8080") == "http://127.0.0.1:8080"
    assert base_url("[::]:8080") == "http://127.0.0.1:8080"
    assert base_url("10.0.0.5:8080") == "http://10.0.0.5:8080"


def test_the_configured_token_and_json_body_are_sent(server: str) -> None:
    api = GatewayApi.from_config(HttpConfig(listen=server, token="s3cret"))
    answer = api.call("POST", "/api/v1/commands", {"device": "fan-1"})
    assert answer.status == 200
    assert answer.body == {"method": "POST", "auth": "Bearer s3cret", "sent": {"device": "fan-1"}}
    assert api.call("DELETE", "/api/v1/silences/1").body["method"] == "DELETE"


def test_a_refusal_is_an_answer_to_call_but_an_error_to_get(server: str) -> None:
    api = GatewayApi(f"http://{server}/")
    assert api.call("POST", "/forbidden", {}).status == 403
    with pytest.raises(ApiError, match=rf"^http://{server}/forbidden: HTTP 403 Forbidden$"):
        api.get("/forbidden")


def test_an_unreachable_gateway_is_named_by_its_address() -> None:
    with pytest.raises(ApiError) as caught:
        GatewayApi("http://127.0.0.1:9").get("/api/v1/status")
    message = str(caught.value)
    assert message.startswith("cannot reach the gateway at http://127.0.0.1:9: ")
    assert message.endswith(f"(is `{command_name()} run` running with this config?)")


def test_an_invalid_config_is_reported_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "outpost.yaml"
    bad.write_text("mqtt: {hots: x}\n")
    assert load_config_or_report(argparse.Namespace(config=str(bad))) is None
    assert capsys.readouterr().err.strip() == f"{bad}:1:8: mqtt.hots: unknown key"
