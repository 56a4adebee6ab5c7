"""The real gateway on a real broker and influxd, seen as an attacker and an operator see it.

:class:`IngestRig` starts ``python -m gateway run`` with a config built by
:func:`tests.gateway.harness.gateway_config`, a device to publish with, and a watcher
subscribed to the dead-letter topic; the operator's view is ``/metrics`` and the log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.reliability.rig import by_label, scrape
from tests.services import InfluxDB, Mosquitto

DEADLETTER = "outpost/deadletter"


class IngestRig:
    """``with IngestRig(tmp_path, mosquitto, influxdb, db, inputs=[…]) as rig:`` …"""

    def __init__(
        self,
        folder: Path,
        broker: Mosquitto,
        influxdb: InfluxDB,
        database: str,
        *,
        env: dict[str, str] | None = None,
        **config: Any,
    ) -> None:
        self.broker = broker
        self.influxdb = influxdb
        self.database = database
        self.config = gateway_config(broker.port, influxdb.url, database, **config)
        self.path = write_config(folder / "outpost.yaml", self.config)
        self.gateway = GatewayProcess(self.path, env=env)
        self.device: Device | None = None
        self.watcher: Device | None = None

    def __enter__(self) -> IngestRig:
        self.gateway.start()
        self.device = Device(self.broker.port)
        self.watcher = Device(self.broker.port, subscribe=[DEADLETTER])
        return self

    def __exit__(self, *exc: object) -> None:
        for client in (self.device, self.watcher):
            if client is not None:
                client.close()
        if self.gateway.proc is not None and self.gateway.proc.poll() is None:
            self.gateway.stop()

    # --- the attacker ---------------------------------------------------------------------

    def publish(self, topic: str, payload: str | bytes, qos: int = 1) -> None:
        assert self.device is not None
        self.device.publish(topic, payload, qos=qos)

    # --- the operator ---------------------------------------------------------------------

    @property
    def metrics_url(self) -> str:
        return f"http://{self.config['http']['listen']}/metrics"

    def deadletters(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        assert self.watcher is not None
        return [json.loads(m.payload) for m in self.watcher.collect(count, timeout)]

    def no_more_deadletters(self, wait: float = 1.0) -> list[dict[str, Any]]:
        """Whatever else arrives on the dead-letter topic within ``wait`` seconds."""
        assert self.watcher is not None
        return [json.loads(m.payload) for m in self.watcher.collect(1_000, wait)]

    def deadletter_counts(self) -> dict[str, float]:
        """``outpost_deadletters_total`` by reason."""
        return by_label(scrape(self.metrics_url), "outpost_deadletters_total", "reason")

    def wait_deadletter_count(self, reason: str, at_least: float, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            count = self.deadletter_counts().get(reason, 0.0)
            if count >= at_least or time.monotonic() > deadline:
                return count
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.gateway.proc is not None and self.gateway.proc.poll() is None

    def stored(self, measurement: str | None = None) -> list[dict[str, Any]]:
        """The points in the test database (none while it does not exist)."""
        if not self.influxdb.count(self.database, measurement):
            return []
        return self.influxdb.points(self.database, measurement)

    def wait_stored(self, n: int, measurement: str | None = None, timeout: float = 15.0) -> list[
        dict[str, Any]
    ]:
        return self.influxdb.wait_for_count(self.database, n, timeout, measurement)
