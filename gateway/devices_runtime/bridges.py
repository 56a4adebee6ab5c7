"""The ``serial:`` bridges inside the gateway: checked against the inputs, run, supervised."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.serial.bridge import SerialBridge
from gateway.topics import TopicRouter

log = logging.getLogger("outpost.devices")

# Formats whose inputs carry the readings the serial bridge publishes on sensors/{device}.
_SENSOR_FORMATS = ("json", "outpost")
BRIDGE_STOP_TIMEOUT = 10.0  # seconds for every bridge to say offline and close its port
BRIDGE_RESTART_DELAY = 2.0  # seconds before a bridge that crashed is started again


def serial_warnings(config: Any, inputs: TopicRouter[str]) -> list[str]:
    """One warning per ``serial:`` device whose readings no input would read."""
    warnings = []
    for entry in config.serial:
        topic = f"sensors/{entry.device}"
        route = inputs.route(topic)
        if route is None or route[0] not in _SENSOR_FORMATS:
            warnings.append(
                f"serial device {entry.device}: its readings arrive on {topic}, which no "
                f"input with format json reads; add "
                f'{{topic: "sensors/{{device}}", format: json, time_field: ts}} to inputs:'
            )
    return warnings


async def run_bridges(bridges: list[SerialBridge], stop: asyncio.Event) -> None:
    """Run every bridge until ``stop`` is set; each then says ``offline``."""
    if not bridges:
        await stop.wait()
        return
    tasks = [asyncio.create_task(_supervise(b), name=f"serial-{b.config.device}") for b in bridges]
    log.info(
        "serial bridges: %s",
        ", ".join(f"{b.config.port} → {b.config.device}" for b in bridges),
    )
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=BRIDGE_STOP_TIMEOUT)
        if pending:
            log.warning(
                "%d serial bridges did not stop within %ss", len(pending), BRIDGE_STOP_TIMEOUT
            )


async def _supervise(bridge: SerialBridge) -> None:
    # A bridge survives unplugs and broker restarts itself; this only catches a bug,
    # so that one misbehaving sensor cannot take the gateway down.
    while True:
        try:
            await bridge.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            bridge.counters["crashes"] += 1
            log.exception("serial bridge %s crashed; restarting", bridge.config.device)
        await asyncio.sleep(BRIDGE_RESTART_DELAY)
