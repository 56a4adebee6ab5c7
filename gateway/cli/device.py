"""``outpost device serial …``.

The gateway's CLI calls :func:`add_parser` with its subparsers (and its common
``-c``/``--log-level`` parent); each verb sets ``func`` (called with the parsed
args, returns the exit code).

``device serial`` bridges the port given by ``--port``; without ``--port`` it
bridges every ``serial:`` entry of the config (``-c FILE`` or ``./outpost.yaml``).
The broker comes from the config's ``mqtt:`` section unless ``--host`` or
``--port-mqtt`` say otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from devices.model import InvalidReading, check_device_id
from devices.profiles import PROFILES
from devices.serial.framing import DEFAULT_MAX_LINE, FRAMINGS
from gateway.config import Config, load_config
from gateway.serial.bridge import SerialBridge
from gateway.serial.settings import MqttConfig, SerialConfig, mqtt_from_gateway


def add_parser(subparsers: Any, common: argparse.ArgumentParser | None = None) -> None:
    """Add ``device`` (with its verb ``serial``) to a CLI's subparsers."""
    parents = [common] if common is not None else []
    device = subparsers.add_parser(
        "device", parents=parents, help="device-side tools (serial bridge)"
    )
    verbs = device.add_subparsers(dest="device_command", metavar="VERB", required=True)
    add_serial_parser(verbs, parents)


def add_serial_parser(
    subparsers: Any, parents: list[argparse.ArgumentParser] | None = None
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serial",
        parents=parents or [],
        help="bridge a serial sensor to MQTT",
        description="Read frames from a serial port and publish them on sensors/{device}; "
        "write commands from devices/{device}/set to the port. Without --port, bridge "
        "every serial: entry of the config.",
    )
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=9600, help="baud rate (default 9600)")
    p.add_argument("--framing", choices=sorted(FRAMINGS), default="jsonlines")
    p.add_argument("--profile", choices=sorted(PROFILES), help="sensor profile (units, ranges)")
    p.add_argument("--device", help="device id (default: the port's file name)")
    p.add_argument("--max-line", type=int, default=DEFAULT_MAX_LINE, help="longest line, bytes")
    p.add_argument("--reopen-interval", type=float, default=2.0, help="seconds between reopens")
    p.add_argument("--host", help="MQTT broker host (default: the config's, localhost)")
    p.add_argument("--port-mqtt", type=int, help="MQTT broker port (default: the config's, 1883)")
    p.add_argument("--username", help="MQTT user name")
    p.add_argument("--password-file", type=Path, help="file holding the MQTT password")
    p.add_argument("--client-id", help="MQTT client id (default outpost-serial-DEVICE)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    p.set_defaults(func=run_serial)
    return p


def _gateway_config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None)).config


def configs_from_args(args: argparse.Namespace) -> list[tuple[SerialConfig, MqttConfig]]:
    """Raises ValueError with a message for the user."""
    gateway = None
    if not args.port or args.host is None or args.port_mqtt is None:
        gateway = _gateway_config(args)
    mqtt = mqtt_from_gateway(gateway.mqtt) if gateway is not None else MqttConfig()
    password = mqtt.password
    if args.password_file:
        password = args.password_file.read_text().strip()
    mqtt = MqttConfig(
        host=args.host or mqtt.host,
        port=args.port_mqtt or mqtt.port,
        username=args.username or mqtt.username,
        password=password,
        client_id=args.client_id,
        tls_context=mqtt.tls_context,
    )
    if args.port:
        device = args.device or os.path.basename(args.port.rstrip("/"))
        entries = [
            SerialConfig(
                port=args.port,
                device=device,
                baud=args.baud,
                framing=args.framing,
                profile=args.profile,
                max_line=args.max_line,
                reopen_interval=args.reopen_interval,
            )
        ]
    else:
        assert gateway is not None
        entries = [
            SerialConfig(
                port=e.port,
                device=e.device,
                baud=e.baud,
                framing=e.framing,
                profile=e.profile,
                reopen_interval=args.reopen_interval,
            )
            for e in gateway.serial
            if args.device is None or e.device == args.device
        ]
        if not entries:
            raise ValueError("no --port given and no matching serial: entry in the config")
    for entry in entries:
        try:
            check_device_id(entry.device)
        except InvalidReading as exc:
            raise ValueError(f"device: {exc}") from None
        if entry.baud <= 0:
            raise ValueError("baud must be positive")
        if entry.profile and entry.profile.lower() not in PROFILES:
            raise ValueError(f"unknown profile {entry.profile!r}; known: {', '.join(PROFILES)}")
    return [(entry, mqtt) for entry in entries]


def run_serial(args: argparse.Namespace) -> int:
    try:
        bridges = [SerialBridge(s, m) for s, m in configs_from_args(args)]
    except Exception as exc:  # a config problem: say it in one line, exit 2
        print(f"outpost device serial: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    level = getattr(args, "log_level", None)
    # A bridge is a service: its port and broker lines are shown (info) unless asked otherwise.
    logging.getLogger("gateway.serial").setLevel(
        logging.DEBUG if args.verbose else getattr(logging, (level or "info").upper())
    )
    asyncio.run(_serve(bridges))
    return 0


async def _serve(bridges: list[SerialBridge]) -> None:
    """Run until SIGINT/SIGTERM; each bridge then publishes ``offline`` and closes its port."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.TaskGroup() as group:
            for bridge in bridges:
                group.create_task(bridge.run())
