"""``outpost simulate``: the command line of the simulator.

``add_parser(subparsers)`` adds the verb to the ``outpost`` CLI;
``python -m simulators`` runs it alone. The broker comes from ``--host`` /
``--port``, else from ``mqtt:`` in the config file (``-c``, default
``./outpost.yaml`` if present), else ``localhost:1883``. Exit codes: 0; 1 if
the broker was never reached; 2 for bad arguments, scenario or config file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from simulators.link import Broker
from simulators.payloads import TS_UNITS, Style
from simulators.runner import SimOptions, SimStats, Simulation
from simulators.scenario import DEFAULT_SCENARIO, ScenarioError, load_scenario

log = logging.getLogger("outpost.simulator")

DEFAULT_CONFIG = "outpost.yaml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``1.5m``, ``2h`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h)")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def add_parser(
    subparsers: Any, common: argparse.ArgumentParser | None = None
) -> argparse.ArgumentParser:
    """Add the ``simulate`` verb to an ``argparse`` subparsers object.

    ``common`` is the outpost CLI's parent parser (``-c``, ``--log-level``);
    ``args.config`` and ``args.log_level`` are read when present.
    """
    p: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        parents=[common] if common is not None else [],
        help="run simulated sensors that publish to the MQTT broker",
        description=ABOUT,
    )
    _add_options(p)
    return p


ABOUT = "Publish simulated sensor readings over MQTT (DESIGN.md §5 topics)."


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        metavar="NAME/FILE",
        help="built-in scenario name or a scenario YAML file (default: %(default)s)",
    )
    p.add_argument(
        "--devices",
        type=_positive(int),
        metavar="N",
        help="number of devices (default: the scenario's; 3 for 'sensors')",
    )
    p.add_argument(
        "--rate",
        type=_positive(float),
        default=1.0,
        metavar="HZ",
        help="samples per second per device (default: %(default)s)",
    )
    p.add_argument(
        "--speed",
        type=_positive(float),
        default=1.0,
        metavar="X",
        help="simulated seconds per wall second (default: %(default)s)",
    )
    p.add_argument("--seed", metavar="S", help="make the values reproducible")
    p.add_argument("--host", help="broker host (default: mqtt.host of -c, else localhost)")
    p.add_argument("--port", type=int, help="broker port (default: mqtt.port of -c, else 1883)")
    p.add_argument(
        "--style",
        choices=[s.value for s in Style],
        default=Style.JSON.value,
        help="value: sensors/{device}/{metric}; json: sensors/{device} with ts; "
        "both (default: %(default)s)",
    )
    p.add_argument(
        "--ts-unit",
        choices=TS_UNITS,
        default="ms",
        help="unit of the JSON ts field, epoch based (default: %(default)s)",
    )
    p.add_argument("--duration", type=parse_duration, metavar="D", help="stop after D (30s, 5m)")
    p.add_argument("--count", type=_positive(int), metavar="N", help="stop after N samples")
    p.add_argument("--prefix", metavar="P", help="device id prefix (default: the scenario's, sim-)")
    p.add_argument("--qos", type=int, choices=[0, 1], default=0, help="(default: %(default)s)")
    p.add_argument(
        "--connections",
        choices=["auto", "device", "shared"],
        default="auto",
        help="one MQTT connection per device (own will) or one shared; "
        "auto: per device up to 50 devices (default: %(default)s)",
    )
    # -c/--config is the outpost CLI's (every verb has it); `args.config` is read.
    p.set_defaults(func=run)


def broker_from(args: argparse.Namespace) -> Broker:
    """``--host/--port`` over the config file's ``mqtt:`` over ``localhost:1883``."""
    mqtt = _mqtt_section(getattr(args, "config", None))
    host = args.host or mqtt.get("host") or "localhost"
    port = args.port or int(mqtt.get("port") or 1883)
    username = mqtt.get("username") or None
    password = mqtt.get("password") or None
    if password is None and mqtt.get("password_file"):
        password = Path(mqtt["password_file"]).read_text(encoding="utf-8").strip()
    return Broker(str(host), port, username, password)


def _mqtt_section(config: str | os.PathLike[str] | None) -> dict[str, Any]:
    # A minimal read: the gateway's config module validates the whole file;
    # the simulator only needs where the broker is, and must not fail on keys
    # it does not know.
    path = Path(config) if config else Path(DEFAULT_CONFIG)
    if not path.is_file():
        if config:
            raise FileNotFoundError(f"{path}: no such config file")
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    section = data.get("mqtt") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return {}
    out: dict[str, Any] = {}
    for key in ("host", "port", "username", "password", "password_file"):
        value = section.get(key)
        if isinstance(value, str):
            value = _ENV.sub(lambda m: _env(m, path), value)
            if key == "password_file" and value and not os.path.isabs(value):
                value = str(path.parent / value)
        out[key] = value
    return out


def _env(match: re.Match[str], path: Path) -> str:
    name, default = match[1], match[2]
    if name in os.environ:
        return os.environ[name]
    if default is None:
        raise ValueError(f"{path}: ${{{name}}} is not set and has no default")
    return default


def options_from(args: argparse.Namespace, description: str = "") -> SimOptions:
    return SimOptions(
        rate=args.rate,
        speed=args.speed,
        style=Style(args.style),
        qos=args.qos,
        ts_unit=args.ts_unit,
        count=args.count,
        duration=args.duration,
        connections=args.connections,
        description=description,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``outpost simulate``; returns the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if getattr(args, "log_level", None) is None:
        # The outpost CLI sets WARNING for short-lived verbs; the simulator is a
        # service, and its start and count lines are how one knows it works.
        log.setLevel(logging.INFO)
    try:
        scenario = load_scenario(args.scenario)
        models = scenario.build_models(args.seed, args.devices, args.prefix)
        broker = broker_from(args)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"outpost simulate: {exc}", file=sys.stderr)
        return 2
    description = f"scenario {scenario.name}: {', '.join(scenario.metric_names)}"
    if scenario.actuators:
        description += f"; actuators {', '.join(a.id for a in scenario.actuators)}"
    if scenario.faults:
        description += f"; {len(scenario.faults)} faults"
    faults = scenario.build_faults(args.seed)
    sim = Simulation(models, broker, options_from(args, description), faults)
    stats = asyncio.run(_run_until_signal(sim))
    return 0 if stats.connected else 1


async def _run_until_signal(sim: Simulation) -> SimStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        return await sim.run(stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """``python -m simulators [options]``: the same verb, without the outpost CLI."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description=ABOUT)
    _add_options(parser)
    parser.add_argument(
        "-c", "--config", help=f"read mqtt.host/port from this file (default: ./{DEFAULT_CONFIG})"
    )
    args = parser.parse_args(argv)
    return int(args.func(args))
