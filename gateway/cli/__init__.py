"""``outpost``: the command line.

Every verb takes ``-c FILE`` (default ``./outpost.yaml`` when present) so it
finds the same state directory and addresses as the gateway, and
``--log-level``; verbs that print results take ``--json``. Exit codes: 0
success, 1 a check found problems, 2 the config or arguments are invalid (or a
file or address it needs cannot be used), 130 interrupted. A problem the user
can fix is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Sequence

from gateway.cli import actions, device, events, init, record, schema, status
from gateway.cli import config as config_verbs
from gateway.cli import rules as rules_verbs
from gateway.cli.common import load_config_or_report, report
from gateway.config import security
from gateway.logsetup import setup_logging
from gateway.statedir import StateDirError
from rules.yamlsrc import SourceError
from simulators import cli as simulate

log = logging.getLogger("outpost")

# Verbs with a module of their own; each adds its parser with (subparsers, common).
_VERBS = (
    init, config_verbs, schema, simulate, device, rules_verbs, record, events, actions, status,
)  # fmt: skip


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
    try:
        gateway = Gateway(loaded)  # every check of `outpost config check`
    except SourceError as exc:
        report(exc.problems)
        return 2
    for warning in security.startup_warnings(loaded):
        log.warning("%s", warning)
    if loaded.path is None:
        log.info("no outpost.yaml: running on built-in defaults")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, gateway.reload_rules)
        await gateway.run(stop)

    try:
        asyncio.run(main())
    except SourceError as exc:  # the HTTP address was taken while the gateway started
        report(exc.problems)
        return 2
    except StateDirError as exc:  # another gateway holds state_dir, or it is unsafe
        log.error("%s", exc)
        return 2
    return 0


def _version() -> str:
    try:
        return importlib.metadata.version("outpost")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


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
    parser.add_argument("--version", action="version", version=f"outpost {_version()}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    run = sub.add_parser("run", parents=[common], help="run the gateway")
    run.set_defaults(func=_cmd_run)

    for verb in _VERBS:
        verb.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb != "run":
        setup_logging(args.log_level or "warning")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C before a verb's own handler was in place
        return 130
    except OSError as exc:
        if exc.filename is None:
            raise  # not about a file the user named: a bug, keep its traceback
        print(f"outpost {args.verb}: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
