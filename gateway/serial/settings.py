"""The serial bridge's settings: one port (``SerialConfig``) and its broker (``MqttConfig``).

``mqtt_from_gateway`` builds the broker settings from the gateway config's ``mqtt:``
section, TLS included, so a bridge inside the gateway and ``outpost device serial``
beside it talk to the same broker the same way.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.serial.framing import DEFAULT_MAX_LINE


@dataclass(frozen=True, slots=True)
class SerialConfig:
    """One ``serial:`` entry of ``outpost.yaml``."""

    port: str
    device: str
    baud: int = 9600  # the gateway config's default, and the Arduino examples' speed
    framing: str = "jsonlines"
    profile: str | None = None
    max_line: int = DEFAULT_MAX_LINE
    reopen_interval: float = 2.0
    read_timeout: float = 0.1
    queue_size: int = 10_000
    deadletter_per_s: int = 20


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The broker a bridge publishes to (the gateway's, inside the gateway)."""

    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str | None = None  # default outpost-serial-<device>
    reconnect_interval: float = 2.0
    qos: int = 1
    # QoS 1 publishes waiting for their PUBACK at once: one at a time caps a bridge at
    # about 1/RTT messages a second (≈1,800/s on loopback), under the 2,000 lines/s target.
    max_inflight: int = 32
    tls_context: ssl.SSLContext | None = None


def mqtt_from_gateway(mqtt: Any, resolve: Callable[[str], Path] = Path) -> MqttConfig:
    """Broker settings from the gateway config's ``mqtt:`` section (a ``gateway.config``
    ``MqttConfig``); ``resolve`` turns the config's relative TLS paths into paths."""
    tls_context = None
    if mqtt.tls is not None:
        ca = str(resolve(mqtt.tls.ca)) if mqtt.tls.ca else None
        tls_context = ssl.create_default_context(cafile=ca)
        if mqtt.tls.cert:
            tls_context.load_cert_chain(str(resolve(mqtt.tls.cert)), str(resolve(mqtt.tls.key)))
        if mqtt.tls.insecure:
            tls_context.check_hostname = False
    return MqttConfig(
        host=mqtt.host,
        port=mqtt.port,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        tls_context=tls_context,
    )
