"""``outpost``: the command line (DESIGN.md §3).

Every verb takes ``-c FILE`` (default ``./outpost.yaml`` when present) so it
finds the same state directory and addresses as the gateway. Exit codes: 0
success, 1 a check found problems, 2 the config or arguments are invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from rules.yamlsrc import SourceError

log = logging.getLogger("outpost")

# Verbs implemented in other packages: (module, function adding the parser).
_PLUGGED_VERBS = [
    ("simulators.cli", "add_parser"),
    ("devices.cli", "add_parser"),
    ("gateway.cli_rules", "add_parser"),
    ("gateway.record", "add_parser"),
    ("gateway.events_cli", "add_parser"),
    ("gateway.cli_actions", "add_parser"),
    ("gateway.http.status_cli", "add_parser"),
]


def setup_logging(level: str, fmt: str = "text") -> None:
    from gateway.logsetup import setup_logging as configure

    configure(level, fmt)  # type: ignore[arg-type]


def _cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import Gateway
    from gateway.config import load_config

    try:
        loaded = load_config(args.config)
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging(args.log_level or loaded.config.log_level, loaded.config.log_format)
    from gateway import security

    security.install_log_redaction(loaded.config)
    for warning in security.startup_warnings(loaded):
        log.warning("%s", warning)
    if loaded.path is None:
        log.info("no outpost.yaml: running on built-in defaults")

    async def main() -> None:
        gateway = Gateway(loaded)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, gateway.reload_rules)
        await gateway.run(stop)

    try:
        asyncio.run(main())
    except SourceError as exc:  # invalid rule files: refuse to start
        print(exc, file=sys.stderr)
        return 2
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    try:
        loaded = load_config(args.config)
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 1
    cfg = loaded.config
    from gateway.alerting import load_rule_files

    try:
        ruleset, files = load_rule_files(cfg.rules)
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 1
    from gateway import security

    for warning in security.startup_warnings(loaded):
        print(f"warning: {warning}", file=sys.stderr)
    where = loaded.path or "built-in defaults"
    from gateway.security import redact_url

    url = redact_url(cfg.influx.url)  # it may carry user:password@
    influx = (
        f"InfluxDB 2.x {url} bucket {cfg.influx.bucket}"
        if cfg.influx.api == "v2"
        else f"InfluxDB 1.x {url} database {cfg.influx.db}"
    )
    print(
        f"{where}: ok — broker {cfg.mqtt.host}:{cfg.mqtt.port}, {len(cfg.inputs)} input(s), "
        f"{influx}, {len(ruleset.rules)} rule(s) from {len(files)} file(s)"
    )
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from gateway.schemas import write_schemas

    for path in write_schemas(args.out):
        print(path)
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Give a plugged-in verb (and its sub-verbs) the -c option every verb takes."""
    if "--config" not in parser._option_string_actions:
        parser.add_argument(
            "-c",
            "--config",
            metavar="FILE",
            help="config file (default: ./outpost.yaml if present)",
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_common(child)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", metavar="FILE", help="config file (default: ./outpost.yaml if present)"
    )
    common.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: the config's log_level, info)",
    )
    parser = argparse.ArgumentParser(
        prog="outpost",
        parents=[common],
        description="Outpost IoT edge gateway: MQTT sensor readings to InfluxDB, with rules.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    run = sub.add_parser("run", parents=[common], help="run the gateway")
    run.set_defaults(func=_cmd_run)

    config = sub.add_parser("config", parents=[common], help="configuration tools")
    config_sub = config.add_subparsers(dest="config_verb", metavar="VERB", required=True)
    check = config_sub.add_parser(
        "check", parents=[common], help="validate the config; exit 1 on any error"
    )
    check.set_defaults(func=_cmd_config_check)

    schema = sub.add_parser(
        "schema", parents=[common], help="write JSON Schemas of the config, rules and events"
    )
    schema.add_argument(
        "--out", default="schemas", metavar="DIR", help="output folder (default: ./schemas)"
    )
    schema.set_defaults(func=_cmd_schema)

    for module_name, function in _PLUGGED_VERBS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        add = getattr(module, function)
        try:
            add(sub, common)
        except TypeError:
            before = set(sub.choices)
            add(sub)
            for name in set(sub.choices) - before:
                _add_common(sub.choices[name])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb != "run":
        setup_logging(args.log_level or "warning")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
