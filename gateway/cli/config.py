"""``outpost config check``: every check ``outpost run`` makes before it connects, and no more.

The checks are :func:`gateway.preflight.check`, the very function the gateway
runs at start, so a config this passes is one the gateway starts with. Every
problem is printed in one round as ``file:line:col: message`` (exit 1). Nothing
connects anywhere; whether ``http.listen`` is free is said as a warning, since
the gateway the config is for usually holds it; an address that cannot be listened on
for another reason (not this machine's, a name that does not resolve) is an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway import preflight
from gateway.cli.common import (
    add_json_flag,
    print_json,
    problem_json,
    problem_line,
    report,
)
from gateway.config import find_config, load_config, security
from rules.yamlsrc import Problem, SourceError


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    config = sub.add_parser("config", parents=[common], help="configuration tools")
    verbs = config.add_subparsers(dest="config_verb", metavar="VERB", required=True)
    check = verbs.add_parser(
        "check",
        parents=[common],
        help="run every check `outpost run` makes, without connecting; exit 1 on any error",
    )
    add_json_flag(check, "the errors, warnings and a summary")
    check.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config)
        checked = preflight.check(loaded)
    except SourceError as exc:
        return _failed(args, exc.problems)
    warnings = [
        *security.startup_warnings(loaded),
        *(f"{problem_line(p)} (now; fine if it is this config's gateway)" for p in checked.in_use),
    ]
    summary = _summary(checked)
    if args.json:
        print_json({"ok": True, "errors": [], "warnings": warnings, **summary})
        return 0
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(_summary_line(summary))
    return 0


def _failed(args: argparse.Namespace, problems: list[Problem]) -> int:
    if args.json:
        print_json(
            {
                "ok": False,
                "config": str(find_config(args.config) or "") or None,
                "errors": [problem_json(p) for p in problems],
                "warnings": [],
            }
        )
        return 1
    report(problems)
    return 1


def _summary(checked: preflight.Checked) -> dict[str, Any]:
    cfg = checked.loaded.config
    influx = cfg.influx
    return {
        "config": str(checked.loaded.path) if checked.loaded.path else None,
        "broker": f"{cfg.mqtt.host}:{cfg.mqtt.port}",
        "inputs": [spec.topic for spec in cfg.inputs],
        "influx": {
            "api": influx.api,
            "url": security.redact_url(influx.url),  # it may carry user:password@
            **({"bucket": influx.bucket} if influx.api == "v2" else {"database": influx.db}),
        },
        "rules": len(checked.ruleset.rules),
        "rule_files": [str(path) for path in checked.rule_files],
        "devices": sorted(cfg.devices),
        "http": cfg.http.listen,
    }


def _summary_line(s: dict[str, Any]) -> str:
    influx = s["influx"]
    where = (
        f"InfluxDB 2.x {influx['url']} bucket {influx['bucket']}"
        if influx["api"] == "v2"
        else f"InfluxDB 1.x {influx['url']} database {influx['database']}"
    )
    return (
        f"{s['config'] or 'built-in defaults'}: ok — broker {s['broker']}, "
        f"{len(s['inputs'])} input(s), {where}, {s['rules']} rule(s) from "
        f"{len(s['rule_files'])} file(s), {len(s['devices'])} device(s), HTTP {s['http']}"
    )
