"""``outpost``: the command line (DESIGN.md §3).

Every verb takes ``-c FILE`` (default ``./outpost.yaml`` when present) so it
finds the same state directory and addresses as the gateway. Exit codes: 0
success, 1 a check found problems, 2 the config or arguments are invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.actions.rules_runtime import load_rule_files
from gateway.cli import actions, device, events, record, status
from gateway.cli import rules as rules_verbs
from gateway.cli.common import load_config_or_report
from gateway.cli.schema import write_schemas
from gateway.config import security
from gateway.logsetup import setup_logging
from gateway.statedir import StateDirError, world_writable
from rules.yamlsrc import SourceError
from simulators import cli as simulate

log = logging.getLogger("outpost")

# Verbs with a module of their own; each adds its parser with (subparsers, common).
_VERBS = (simulate, device, rules_verbs, record, events, actions, status)


def _cmd_run(args: argparse.Namespace) -> int:
    # Importing the runtime (aiohttp's client and server above all) adds ~190 ms to the
    # ~300 ms every verb and `outpost --help` take (python -X importtime): only `run` pays it.
    from gateway.app import Gateway

    loaded = load_config_or_report(args)
    if loaded is None:
        return 2
    # Everything the gateway creates (journal, outbox, their WAL files) is its user's
    # alone, whatever umask it was started with (systemd sets one, a shell another).
    os.umask(0o077)
    setup_logging(args.log_level or loaded.config.log_level, loaded.config.log_format)
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
    except StateDirError as exc:  # another gateway holds state_dir, or it is unsafe
        log.error("%s", exc)
        return 2
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    loaded = load_config_or_report(args)
    if loaded is None:
        return 1
    cfg = loaded.config
    try:
        ruleset, files = load_rule_files(cfg.rules)
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 1
    unsafe = world_writable(Path(cfg.state_dir))
    if unsafe:
        print(unsafe, file=sys.stderr)
        return 1
    for warning in security.startup_warnings(loaded):
        print(f"warning: {warning}", file=sys.stderr)
    where = loaded.path or "built-in defaults"
    url = security.redact_url(cfg.influx.url)  # it may carry user:password@
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
    for path in write_schemas(args.out):
        print(path)
    return 0


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

    for verb in _VERBS:
        verb.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb != "run":
        setup_logging(args.log_level or "warning")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
