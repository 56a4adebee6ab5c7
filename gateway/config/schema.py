"""The shape of ``outpost.yaml`` (DESIGN.md §4), validated with pydantic.

Every model forbids unknown keys: a typo such as ``batchsize`` must fail at
start with its line, not be ignored. Durations and sizes accept the human
forms (``1s``, ``64KiB``) and are stored as seconds and bytes. Secrets are
``SecretStr`` so that a repr or a log line never shows them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from devices.modbus.spec import RegisterSpec
from devices.model import check_device_id
from gateway.config.addresses import is_ip_address, is_loopback, split_listen
from gateway.config.units import parse_duration, parse_size
from rules.durations import DURATION_PATTERN

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "pattern": DURATION_PATTERN,
            "description": "duration: 500ms, 30s, 5m, 1h, 7d; a number is seconds",
        }
    ),
]
DeviceId = Annotated[str, AfterValidator(check_device_id)]
"""A device id, held to the one rule every source of ids follows (devices.model)."""
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "type": ["string", "integer"],
            "description": "size: 64KiB, 256MiB, 1GB; a number is bytes",
        }
    ),
]
# A DNS name as a Host header carries it: labels of letters, digits, '-' and '_'.
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
                        r"(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    ca: str | None = Field(None, description="CA certificate (PEM) that signed the broker's cert")
    cert: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key: str | None = Field(None, description="client private key (PEM)")
    insecure: bool = Field(False, description="skip the broker hostname check (loud warning)")

    @model_validator(mode="after")
    def _cert_needs_key(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls: cert and key go together")
        return self


class MqttConfig(_Model):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field(
        "outpost-gw",
        min_length=1,
        description="fixed id, so the broker keeps the session across restarts",
    )
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = Field(None, description="file holding the password")
    tls: TlsConfig | None = None
    keepalive: Duration = Field(
        30.0, ge=0, le=65535, description="half-open connections are noticed after 1.5x"
    )
    session_expiry: Duration = Field(
        86400.0,
        ge=0,
        le=4_294_967_295,
        description="how long the broker keeps our "
        "subscriptions and queued QoS 1 messages while we are away",
    )
    reconnect_min: Duration = 0.5
    reconnect_max: Duration = 30.0
    max_packet_size: Size = Field(
        16 * 1024**2,
        ge=4096,
        le=268_435_460,
        description="the largest MQTT packet the broker may send the ingest connection; "
        "it drops bigger messages instead of sending them (every input's max_payload "
        "must be at least 64 KiB below it, so oversized payloads still arrive to be "
        "dead-lettered)",
    )

    @field_validator("username", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class InputConfig(_Model):
    topic: str = Field(description="template, e.g. sensors/{device}/{metric}; + and # allowed")
    format: str = Field("value", description="payload format or device convention")
    qos: Literal[0, 1] = 1
    time_field: str | None = Field(None, description="json: field holding the reading time")
    device: DeviceId | None = Field(None, description="device id when the topic has no {device}")
    device_field: str | None = Field(None, description="json: field holding the device id")
    device_from_payload: bool = Field(
        False,
        description="let the payload's device id (json device_field, influx device tag) "
        "name another device than the topic's {device}; otherwise such a message is "
        "dead-lettered as device_mismatch",
    )
    metric: str | None = Field(None, description="value: metric name when the topic has none")
    max_payload: Size = 65536
    max_readings_per_message: int = Field(
        256,
        ge=1,
        le=100_000,
        description="a message decoding to more readings is dead-lettered whole "
        "(too_many_readings)",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="extra InfluxDB tags")
    deadband: float | None = Field(
        None,
        ge=0,
        description="skip writing a number within ±this "
        "of the last written one (and equal bools/strings)",
    )
    heartbeat: Duration | None = Field(
        None, description="with deadband: write at least this often anyway"
    )
    future_tolerance: Duration = Field(
        300.0, description="device times further ahead of the gateway's clock follow bad_time"
    )
    past_tolerance: Duration | None = Field(
        30 * 86400.0, description="device times older than this follow bad_time (null: no limit)"
    )
    bad_time: Literal["restamp", "tag", "deadletter"] = Field(
        "restamp",
        description="restamp: use the arrival time; tag: add ts_suspect=future|past; "
        "deadletter: refuse the message",
    )


class InfluxConfig(_Model):
    url: str = "http://localhost:8086"
    server: Literal["influxdb", "victoriametrics"] = Field(
        "influxdb",
        description="the database behind url: InfluxDB 1.x/2.x and VictoriaMetrics read a "
        "backslash in a name differently, and VictoriaMetrics stores numbers only",
    )
    token: SecretStr | None = None
    token_file: str | None = None
    org: str | None = None
    bucket: str | None = None
    database: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    retention: Duration | None = Field(None, description="1.x: retention of a created database")
    retention_policy: str | None = Field(None, description="1.x: write into this policy")
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: Duration = 1.0
    timeout: Duration = 10.0
    gzip: bool = True
    max_buffer: int = Field(
        200_000,
        ge=1000,
        description="readings held in memory while "
        "InfluxDB is unreachable; beyond it the oldest QoS 0 ones are dropped",
    )
    max_series: int = Field(
        100_000,
        ge=1,
        description="distinct series (metric, device, tags) written since start; a message "
        "that would add one more is dead-lettered (too_many_series), known series go on",
    )

    @field_validator("username", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_api(self) -> InfluxConfig:
        v2 = [k for k in ("org", "bucket", "token") if getattr(self, k) is not None]
        if v2 and len(v2) < 3:
            missing = sorted({"org", "bucket", "token"} - set(v2))
            raise ValueError(f"InfluxDB 2.x needs org, bucket and token; missing {missing}")
        if v2 and self.database:
            raise ValueError("give either database (1.x) or org+bucket+token (2.x), not both")
        return self

    @property
    def api(self) -> Literal["v1", "v2"]:
        return "v2" if self.bucket else "v1"

    @property
    def db(self) -> str:
        return self.database or "outpost"


class OutboxConfig(_Model):
    """Readings wait here, on disk, while InfluxDB is unreachable (``state_dir/outbox.sqlite3``)."""

    enabled: bool = True
    max_bytes: Size = 256 * 1024**2
    max_age: Duration = 7 * 86400.0
    backfill_rate: float = Field(
        5000.0,
        gt=0,
        description="readings/s sent from the outbox after an outage, next to the live readings",
    )


class CommandSpec(_Model):
    type: Literal["int", "float", "bool", "str"] | None = None
    min: float | None = None
    max: float | None = None
    enum: list[Any] | None = None
    step: float | None = Field(
        None, gt=0, description="numbers must be whole multiples of step (tenths: 0.1)"
    )


class DeviceConfig(_Model):
    convention: str = "outpost"
    commands: dict[str, CommandSpec] = Field(default_factory=dict)
    min_interval: Duration = 0.0
    ack_timeout: Duration = 5.0
    retries: int = Field(3, ge=0, le=20)
    tags: dict[str, str] = Field(default_factory=dict)


class SparkplugConfig(_Model):
    """Outpost as a Sparkplug B host application (inputs with ``format: sparkplug``)."""

    host_id: str | None = Field(
        "outpost",
        description="primary host id: a retained STATE on spBv1.0/STATE/<host_id> tells "
        "edge nodes whether Outpost is online (null: announce nothing)",
    )
    rebirth_timeout: Duration = Field(
        5.0,
        gt=0,
        description="how long a rebirth request waits for its NBIRTH; each unanswered "
        "request doubles the wait, up to 5m",
    )

    @field_validator("host_id")
    @classmethod
    def _topic_level(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "+#/")):
            raise ValueError("host_id must be one topic level: not empty, no + # /")
        return value


class SerialConfig(_Model):
    port: str
    baud: int = 9600
    framing: Literal["jsonlines", "kv", "csv"] = "jsonlines"
    profile: str | None = None
    device: DeviceId


class ModbusRtuConfig(_Model):
    """The RS-485 line of a Modbus RTU device; devices on one port share one line."""

    port: str = Field(description="serial port of the RS-485 adapter, e.g. /dev/ttyUSB0")
    baudrate: int = Field(9600, ge=300, le=921_600, description="bits per second")
    parity: Literal["N", "E", "O"] = Field("N", description="N (none), E (even) or O (odd)")
    stopbits: Literal[1, 2] = 1

    def line(self) -> str:
        return f"{self.baudrate} 8{self.parity}{self.stopbits}"


class ModbusRegisterConfig(RegisterSpec):
    """A register of a ``modbus:`` device, with its own poll interval if it needs one."""

    interval: Duration | None = Field(
        None, description="read this register this often (default: the device's interval)"
    )


class ModbusDeviceConfig(_Model):
    """One Modbus device: where it is (``tcp:`` or ``rtu:``), its unit id and its registers."""

    device: str = Field(description="device id: the device tag of its readings, the name "
                        "rules and commands use")
    tcp: str | None = Field(
        None, description="HOST:PORT of a Modbus TCP device or TCP-to-RTU gateway (HOST alone: "
        "port 502)"
    )
    rtu: ModbusRtuConfig | None = Field(None, description="the RS-485 line of an RTU device")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id; on RTU 1…247")
    profile: str | None = Field(
        None, description="register map of a known device (xy_md02, sdm120) or a profile file "
        "(path ending in .yaml, relative to this file)"
    )
    registers: dict[str, ModbusRegisterConfig] = Field(
        default_factory=dict,
        description="registers by metric name; added to the profile's (the same name replaces it)",
    )
    interval: Duration = Field(10.0, description="how often the registers are read")
    timeout: Duration = Field(
        0.5, description="how long to wait for each answer; while the device does not answer, "
        "every other device on its bus waits this long once per interval"
    )
    retries: int = Field(1, ge=0, le=5, description="requests sent again after a timeout "
                         "(not while the device is offline: then one probe per interval)")
    max_read: int | None = Field(
        None, ge=1, le=125, description="most registers in one request (default: the "
        "profile's, else 125)"
    )

    @model_validator(mode="after")
    def _one_link(self) -> ModbusDeviceConfig:
        if (self.tcp is None) == (self.rtu is None):
            raise ValueError("give either tcp: HOST:PORT or rtu: {port: …}")
        if self.tcp is not None:
            tcp_address(self.tcp)
        if self.rtu is not None and not 1 <= self.unit_id <= 247:
            raise ValueError("unit_id: an RTU device has a unit id from 1 to 247")
        if not 0.05 <= self.interval <= 86400:
            raise ValueError("interval: from 50ms to 1d")
        if not 0.01 <= self.timeout <= 10:
            raise ValueError("timeout: from 10ms to 10s")
        for metric, register in self.registers.items():
            if register.interval is not None and not 0.05 <= register.interval <= 86400:
                raise ValueError(f"registers.{metric}.interval: from 50ms to 1d")
        return self

    @property
    def bus(self) -> str:
        """The link the device shares with others: ``tcp HOST:PORT`` or ``rtu PORT``."""
        if self.tcp is not None:
            host, port = tcp_address(self.tcp)
            return f"tcp {host}:{port}"
        assert self.rtu is not None
        return f"rtu {self.rtu.port}"


def tcp_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``; ``HOST`` alone is port 502) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, "502"
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"tcp: {text!r} is not HOST:PORT, e.g. 192.168.1.50:502")
    return host, int(port)


class NotifierConfig(_Model):
    """One entry under ``notify:``: a webhook (``webhook: URL``) or ``type: log``."""

    type: Literal["webhook", "log"] = "webhook"
    webhook: SecretStr | None = Field(None, description="URL to POST alerts to (may hold a key)")
    webhook_file: str | None = Field(None, description="file holding the webhook URL")
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict, description="templated headers")
    body: str | dict[str, Any] | list[Any] | None = Field(
        None, description="templated body; default: the alert event as JSON"
    )
    timeout: Duration = 5.0
    retries: int = Field(3, ge=0, le=20)
    states: list[Literal["pending", "firing", "resolved", "inactive"]] = Field(
        default_factory=lambda: ["firing", "resolved"]
    )
    severities: list[str] = Field(default_factory=list, description="only these (default all)")

    @model_validator(mode="after")
    def _needs_url(self) -> NotifierConfig:
        if self.type == "webhook" and self.webhook is None:
            raise ValueError("a webhook notifier needs webhook: URL (or webhook_file)")
        return self


class ClockConfig(_Model):
    """The gateway's own clock (a Pi without a real-time clock is wrong until NTP answers)."""

    valid_after: str = Field(
        "2026-01-01T00:00:00Z", description="a clock earlier than this is not synchronised yet"
    )
    unsynced: Literal["hold", "deadletter"] = Field(
        "hold",
        description="hold: keep arrival-stamped readings until the clock is set, then "
        "re-stamp them exactly; deadletter: refuse them",
    )
    hold_max: int = Field(100_000, ge=0, description="messages held at most while unsynced")

    @field_validator("valid_after")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        from datetime import datetime

        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                "valid_after must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z"
            ) from None
        if moment.tzinfo is None:
            raise ValueError("valid_after needs a zone (Z or +hh:mm)")
        return value

    @property
    def valid_after_ns(self) -> int:
        from datetime import datetime

        return int(datetime.fromisoformat(self.valid_after).timestamp()) * 1_000_000_000


class JournalConfig(_Model):
    retention: Duration = Field(30 * 86400.0, description="how long journal entries are kept")


class HttpConfig(_Model):
    listen: str = Field(
        "127.0.0.1:8080",
        description="HOST:PORT; an address other than loopback (0.0.0.0:8080: the LAN) needs "
        "token_file, and then reading needs the token too",
    )
    token: SecretStr | None = None
    token_file: str | None = Field(None, description="bearer token for changes (POST, DELETE)")
    read_token_required: bool = Field(
        False,
        description="reading the API and /metrics needs the bearer token too (the page at / "
        "stays open); always so when listen is not loopback",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="further names the gateway answers to in the Host header (a DNS name "
        "of the gateway, a reverse proxy's); loopback names and the listen address are "
        "always accepted, and any IP address when listening on every interface",
    )
    header_timeout: Duration = Field(
        10.0,
        gt=0,
        le=86400,
        description="a new connection that has not sent a whole request head by then is "
        "closed (408)",
    )
    idle_timeout: Duration = Field(
        60.0,
        gt=0,
        le=86400,
        description="closed after this long: a kept-alive connection without a next request, "
        "a request body that stops arriving, a client that stops reading its answer",
    )
    max_connections: int = Field(
        256,
        ge=1,
        le=768,
        description="connections open at once; past it a new one is answered 503 and closed "
        "(at most 768: the MQTT client cannot use a file descriptor above 1023)",
    )
    live_max_series: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="series (device, metric) the dashboard keeps a last-hour sparkline of",
    )
    dashboard: bool = Field(
        True,
        description="serve the live page at / and keep its "
        "in-memory view (latest readings, sparklines); false on the "
        "smallest devices leaves the API, /metrics and health only",
    )

    @model_validator(mode="after")
    def _read_token_needs_token(self) -> HttpConfig:
        if self.read_token_required and self.token is None:
            raise ValueError("read_token_required needs token_file (or token)")
        return self

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        names = []
        for entry in value:
            name = entry.strip().lower().rstrip(".")
            if not (_HOST_NAME.match(name) or is_ip_address(name)):
                raise ValueError(f"{entry!r} is not a host name or an IP address "
                                 "(no port, no scheme, no wildcard)")
            names.append(name.strip("[]"))
        return names

    @property
    def reads_need_token(self) -> bool:
        """Reading needs the bearer token: asked for, or listening beyond loopback."""
        return self.read_token_required or not is_loopback(split_listen(self.listen)[0])


def _default_inputs() -> list[InputConfig]:
    return [
        InputConfig(topic="sensors/{device}/{metric}", format="value"),
        InputConfig(topic="sensors/{device}", format="json", time_field="ts"),
    ]


class Config(_Model):
    """The whole gateway configuration; every key has a working default."""

    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    inputs: list[InputConfig] = Field(default_factory=_default_inputs)
    influx: InfluxConfig = Field(default_factory=InfluxConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    rules: list[str] = Field(default_factory=lambda: ["rules.d/*.yaml"])
    notify: dict[str, NotifierConfig] = Field(default_factory=dict)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    devices: dict[DeviceId, DeviceConfig] = Field(default_factory=dict)
    serial: list[SerialConfig] = Field(default_factory=list)
    sparkplug: SparkplugConfig = Field(default_factory=SparkplugConfig)
    modbus: list[ModbusDeviceConfig] = Field(
        default_factory=list, description="Modbus RTU/TCP devices the gateway polls itself"
    )
    http: HttpConfig = Field(default_factory=HttpConfig)
    state_dir: str = "./var"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per log line (for log shippers)"
    )
