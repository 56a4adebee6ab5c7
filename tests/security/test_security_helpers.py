"""gateway.config.security: permission warnings, exposure warnings, redaction; config errors
that never echo a secret; the HTTP defaults."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.config import LoadedConfig, load_config
from gateway.config.schema import Config
from gateway.config.security import (
    RedactingFilter,
    check_exposure,
    check_permissions,
    inline_secret_keys,
    install_log_redaction,
    redact_url,
    redact_urls_in,
    secret_values,
    startup_warnings,
)
from gateway.influx.v1 import InfluxV1Sink
from gateway.influx.v2 import InfluxV2Sink
from rules.yamlsrc import SourceError

SECRET = "s3cret-Value-42"


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_world_readable_config_with_an_inline_secret_is_reported(tmp_path) -> None:
    config = _write(tmp_path / "outpost.yaml",
                    f"mqtt: {{username: gw, password: {SECRET}}}\n", 0o644)
    warnings = check_permissions(load_config(str(config)))
    assert len(warnings) == 1 and "mqtt.password" in warnings[0]
    assert "chmod 600" in warnings[0] and SECRET not in warnings[0]
    config.chmod(0o640)  # group-readable is the admin's choice (e.g. an `outpost` group)
    assert check_permissions(load_config(str(config))) == []


def test_credentials_in_the_influx_url_count_as_inline(tmp_path) -> None:
    config = _write(tmp_path / "outpost.yaml",
                    f'influx: {{url: "http://admin:{SECRET}@db:8086", database: x}}\n', 0o604)
    warnings = check_permissions(load_config(str(config)))
    assert len(warnings) == 1 and "influx.url" in warnings[0] and SECRET not in warnings[0]


@pytest.mark.parametrize("value", ["${MQTT_PASSWORD}", "${MQTT_PASSWORD:-}"])
def test_secrets_from_the_environment_are_not_inline(tmp_path, value: str) -> None:
    config = _write(tmp_path / "outpost.yaml",
                    f'mqtt: {{username: gw, password: "{value}"}}\n', 0o644)
    loaded = load_config(str(config), environ={"MQTT_PASSWORD": SECRET})
    assert loaded.config.mqtt.password is not None
    assert check_permissions(loaded) == []


@pytest.mark.parametrize(
    ("value", "inline"),
    [
        ("${MQTT_PASSWORD:-fallback}", ["mqtt.password"]),  # the default is in the file
        ("$${MQTT_PASSWORD}", ["mqtt.password"]),  # a literal "${MQTT_PASSWORD}"
        ("yes", ["mqtt.password"]),  # a string for the loader, so a string here
        ("${MQTT_PASSWORD}", []),
    ],
)
def test_inline_secrets_are_read_as_the_config_loader_reads_them(value: str, inline) -> None:
    assert inline_secret_keys(f'mqtt: {{username: gw, password: "{value}"}}\n') == inline


def test_a_config_the_loader_refuses_has_no_inline_secrets_to_report() -> None:
    assert inline_secret_keys("mqtt: {password: a}\nmqtt: {password: b}\n") == []


def test_readable_secret_files_and_private_key_are_reported(tmp_path) -> None:
    _write(tmp_path / "mqtt.pass", SECRET, 0o644)
    _write(tmp_path / "api.token", SECRET, 0o600)
    _write(tmp_path / "hook.url", "https://hooks.example/T/B/X", 0o604)
    _write(tmp_path / "gw.key", "key", 0o644)
    _write(tmp_path / "gw.crt", "crt", 0o644)
    config = _write(tmp_path / "outpost.yaml", """
mqtt: {username: gw, password_file: mqtt.pass, tls: {cert: gw.crt, key: gw.key}}
http: {token_file: api.token}
notify: {ops: {webhook_file: hook.url}}
""", 0o644)  # readable, but holds no secret itself
    warnings = "\n".join(check_permissions(load_config(str(config))))
    assert "mqtt.password_file" in warnings and "mqtt.pass" in warnings
    assert "notify.ops.webhook_file" in warnings and "mqtt.tls.key" in warnings
    assert "api.token" not in warnings and "outpost.yaml" not in warnings
    assert SECRET not in warnings


def test_world_writable_config_is_reported(tmp_path) -> None:
    config = _write(tmp_path / "outpost.yaml", "state_dir: ./var\n", 0o666)
    assert "world-writable" in "\n".join(check_permissions(load_config(str(config))))


def test_defaults_have_nothing_to_report() -> None:
    assert startup_warnings(LoadedConfig(Config(), None, Path.cwd())) == []


def test_http_listens_on_localhost_by_default() -> None:
    assert Config().http.listen == "127.0.0.1:8080"


def test_exposure_warnings(tmp_path) -> None:
    config = _write(tmp_path / "outpost.yaml", """
mqtt: {host: broker.lan, username: gw, password: "${P}"}
influx: {url: "http://db.lan:8086", database: x, username: u, password: "${P}"}
""", 0o600)
    warnings = "\n".join(check_exposure(load_config(str(config), environ={"P": SECRET})))
    assert "broker.lan in clear text" in warnings
    assert "db.lan over plain http" in warnings
    assert SECRET not in warnings


@pytest.mark.parametrize("url, expected", [
    ("http://user:pw@influx.lan:8086/x", "http://***@influx.lan:8086/x"),
    ("https://ntfy.sh/alerts?auth=abc&title=t", "https://ntfy.sh/alerts?auth=***&title=t"),
    ("http://h:8086/write?db=x&u=admin&p=pw", "http://h:8086/write?db=x&u=***&p=***"),
    ("http://localhost:8086", "http://localhost:8086"),
])
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_urls_inside_an_exception_text() -> None:
    text = "InvalidURL: http://admin:pw-123@[bad:8086/write"
    assert "pw-123" not in redact_urls_in(text)


def test_influx_sinks_describe_themselves_without_credentials() -> None:
    v1 = InfluxV1Sink(f"http://admin:{SECRET}@127.0.0.1:8086", "db", password=SECRET)
    v2 = InfluxV2Sink(f"https://u:{SECRET}@cloud.example", SECRET, "org", "bucket")
    for sink in (v1, v2):
        assert SECRET not in sink.describe()


def test_config_errors_never_echo_a_secret(tmp_path) -> None:
    (tmp_path / "p").write_text(SECRET)
    broken = [
        f"mqtt: {{password: {SECRET}, passwd: x}}",                    # unknown key beside it
        f"mqtt: {{password: {SECRET}, password_file: p}}",             # both
        f"http: {{token: [{SECRET}]}}",                                # wrong type
        f"http: {{token: {SECRET}, listen: nowhere}}",                 # a sibling is wrong
        f"influx: {{token: {SECRET}}}",                                # 2.x keys missing
        f"notify: {{ops: {{webhook: {{url: {SECRET}}}}}}}",            # mapping, not a URL
        f"mqtt: {{password: {SECRET}, port: {SECRET}}}",               # a bad sibling value
    ]
    for i, text in enumerate(broken):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text + "\n")
        with pytest.raises(SourceError) as info:
            load_config(str(path))
        assert SECRET not in str(info.value), text


def test_redacting_filter_cleans_messages_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("outpost", logging.ERROR, __file__, 1,
                               "connecting with %s", (SECRET,), None)
    try:
        raise ValueError(f"bad {SECRET}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter([SECRET]).filter(record)
    formatted = logging.Formatter().format(record)
    assert SECRET not in formatted and "connecting with ***" in formatted


def test_install_log_redaction_covers_every_secret_of_the_config(caplog) -> None:
    config = Config.model_validate({
        "mqtt": {"username": "gw", "password": "mqtt-pass-1"},
        "influx": {"url": "http://x", "org": "o", "bucket": "b", "token": "influx-token-2"},
        "http": {"token": "api-token-3"},
        "notify": {"ops": {"webhook": "https://hooks.example/T1/B2/key-4",
                           "headers": {"Authorization": "Bearer header-5"}}}})
    assert set(secret_values(config)) == {"mqtt-pass-1", "influx-token-2", "api-token-3",
                                          "https://hooks.example/T1/B2/key-4",
                                          "Bearer header-5"}
    logger = logging.getLogger("outpost.test-redaction")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(handler.format(record))  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        install_log_redaction(config, logger)
        logger.error("oops %s %s", "mqtt-pass-1", "https://hooks.example/T1/B2/key-4")
    finally:
        logger.removeHandler(handler)
    assert seen == ["oops *** ***"]
