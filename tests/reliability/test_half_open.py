"""A half-open broker connection (the network silently stops carrying packets) is noticed
by the MQTT keepalive; the gateway reconnects and readings flow again."""

from __future__ import annotations

import asyncio
import threading
import time

from tests.gateway.harness import Device, GatewayProcess, gateway_config, write_config
from tests.services import free_port


class BlackholeProxy:
    """TCP relay in front of the broker; ``blackhole()`` makes open connections go silent
    (no FIN, no RST: packets just stop), as a dead Wi-Fi link or a NAT timeout does."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self._upstream = upstream_port
        self._silent: set[asyncio.StreamWriter] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        self._writers |= {writer, up_writer}

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, tag: asyncio.StreamWriter
        ) -> None:
            while data := await src.read(65536):
                if tag not in self._silent:
                    dst.write(data)
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, writer), pipe(up_reader, writer, writer), return_exceptions=True
        )

    def blackhole(self) -> None:
        """Silence every connection open now (new ones work)."""
        self._loop.call_soon_threadsafe(lambda: self._silent.update(self._writers))

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            for w in self._writers:
                w.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)
        self._loop.close()


def test_half_open_connection_is_detected_by_keepalive_and_the_gateway_reconnects(
    tmp_path, mosquitto, influxdb, influx_db
):
    proxy = BlackholeProxy(mosquitto.port)
    try:
        config = gateway_config(proxy.port, influxdb.url, influx_db)
        config["mqtt"].update({"keepalive": "2s", "reconnect_min": "1s", "reconnect_max": "2s"})
        with (
            GatewayProcess(write_config(tmp_path / "outpost.yaml", config)) as gateway,
            Device(mosquitto.port) as device,
        ):
            device.publish("sensors/gh-1/before", "1")
            influxdb.wait_for_count(influx_db, 1, measurement="before")
            silenced = time.monotonic()
            proxy.blackhole()
            gateway.wait_log("lost the broker connection", timeout=15)
            noticed = time.monotonic() - silenced
            deadline = time.monotonic() + 15
            while gateway.log().count("connected to 127.0.0.1") < 2:
                assert time.monotonic() < deadline, gateway.log()
                time.sleep(0.1)
            device.publish("sensors/gh-1/after", "2")
            influxdb.wait_for_count(influx_db, 1, measurement="after", timeout=10)
    finally:
        proxy.close()
    assert noticed < 2 * 2 + 2  # keepalive 2 s: paho gives up after 1.5 keepalives (+ slack)
