"""The HTTP keys of outpost.yaml, the Host names the server answers to, and the throttled
library log lines (the processes that use them are attacked in tests/security/test_http_*)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.config import Config, load_config
from gateway.http.origin import AllowedHosts, host_name
from gateway.logsetup import ThrottledFilter
from rules.yamlsrc import SourceError


def test_the_http_limits_have_their_documented_defaults() -> None:
    http = Config().http
    assert (http.header_timeout, http.idle_timeout, http.max_connections) == (10.0, 60.0, 256)
    assert http.allowed_hosts == [] and not http.reads_need_token


def test_bad_http_limits_are_reported_with_their_line(tmp_path: Path) -> None:
    config = tmp_path / "outpost.yaml"
    config.write_text("http:\n"
                      "  allowed_hosts: [gateway.lan, 'gateway.lan:8080']\n"
                      "  header_timeout: 0s\n"
                      "  idle_timeout: soon\n"
                      "  max_connections: 5000\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        load_config(str(config), environ={})
    problems = [str(p) for p in info.value.problems]
    assert [p.split(": ")[0].rsplit(":", 1)[0] for p in problems] == [
        f"{config}:{line}" for line in (2, 3, 4, 5)]
    assert "'gateway.lan:8080' is not a host name or an IP address" in problems[0]
    assert "http.max_connections" in problems[3] and "768" in problems[3]


def test_allowed_hosts_are_names_or_addresses_in_lower_case(tmp_path: Path) -> None:
    config = tmp_path / "outpost.yaml"
    config.write_text("http: {allowed_hosts: [Gateway.LAN., '[fd00::1]', 10.0.0.5, my_host]}\n",
                      encoding="utf-8")
    http = load_config(str(config), environ={}).config.http
    assert http.allowed_hosts == ["gateway.lan", "fd00::1", "10.0.0.5", "my_host"]


@pytest.mark.parametrize("header, name", [
    ("127.0.0.1:8080", "127.0.0.1"), ("[::1]:8080", "::1"), ("[::1]", "::1"),
    ("Gateway.Lan.:80", "gateway.lan"), ("localhost", "localhost"), ("::1", "::1"),
    (" evil.example ", "evil.example"),
])
def test_the_name_in_a_host_header(header: str, name: str) -> None:
    assert host_name(header) == name


def test_a_server_on_one_address_answers_to_it_and_loopback_only() -> None:
    hosts = AllowedHosts("192.168.1.20:8080", ["gateway.lan"])
    for header in ("192.168.1.20:8080", "localhost:8080", "[::1]:8080", "GATEWAY.lan"):
        assert hosts.allows(header), header
    for header in ("192.168.1.21:8080", "evil.example", "gateway.lan.evil.example", ""):
        assert not hosts.allows(header), header


def test_a_server_on_every_interface_answers_to_any_address_but_not_any_name() -> None:
    hosts = AllowedHosts("0.0.0.0:8080")
    for header in ("10.1.2.3:8080", "[fd00::5]:8080", "127.0.0.1"):
        assert hosts.allows(header), header
    assert not hosts.allows("evil.example:8080")
    assert "any IP address" in hosts.describe()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_librarys_repeated_log_line_is_written_once_per_interval_with_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("outpost.test.library")
    flt = ThrottledFilter(10.0, clock)
    logger.addFilter(flt)
    try:
        with caplog.at_level(logging.ERROR, logger=logger.name):
            for _ in range(500):  # as asyncio words an accept that fails with EMFILE
                logger.error("socket.accept() out of system resource\nsocket: <fd=6>")
            logger.error("another problem")
            clock.now = 10.0
            logger.error("socket.accept() out of system resource\nsocket: <fd=6>")
    finally:
        logger.removeFilter(flt)
    assert [r.getMessage() for r in caplog.records] == [
        "socket.accept() out of system resource\nsocket: <fd=6>",
        "another problem",
        "socket.accept() out of system resource\nsocket: <fd=6>"
        " (and 499 more since the last report)",
    ]
