"""``outpost command`` and ``outpost silence``: talk to the running gateway's HTTP API.

Both read ``http.listen`` and ``http.token_file`` from the same config as the
gateway (``-c``), so they reach it with the token it expects. A command sent
by hand goes through exactly the checks a rule's command does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.api import ApiError, GatewayApi
from gateway.cli.common import add_json_flag, load_config_or_report, print_json


def parse_setting(text: str) -> tuple[str, Any]:
    """``speed=100`` → ("speed", 100); ``mode=auto`` → ("mode", "auto"); JSON values allowed."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{text!r}: write KEY=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # plain text: ON stays "ON", never a YAML 1.1 boolean
    return key, value


def _cmd_command(args: argparse.Namespace) -> int:
    loaded = load_config_or_report(args)
    if loaded is None:
        return 2
    api = GatewayApi.from_config(loaded.config.http)
    try:
        settings = dict(parse_setting(s) for s in args.settings)
        answer = api.call("POST", "/api/v1/commands", {"device": args.device, "set": settings})
    except (ValueError, ApiError) as exc:
        print(exc, file=sys.stderr)
        return 2
    body = answer.body
    refused = answer.status >= 300
    if args.json:
        print_json({"device": args.device, "set": settings, "status": answer.status, **body})
    elif refused:
        print(f"refused: {body.get('detail') or body.get('error')}", file=sys.stderr)
    else:
        print(f"{body['outcome']}: {body['detail']}")
    return 1 if refused else 0


def _cmd_silence(args: argparse.Namespace) -> int:
    loaded = load_config_or_report(args)
    if loaded is None:
        return 2
    api = GatewayApi.from_config(loaded.config.http)
    try:
        if args.silence_verb == "add":
            answer = api.call(
                "POST",
                "/api/v1/silences",
                {
                    "rule": args.rule,
                    "device": args.device,
                    "for": args.duration,
                    "comment": args.comment,
                    "created_by": "cli",
                },
            )
        elif args.silence_verb == "remove":
            answer = api.call("DELETE", f"/api/v1/silences/{args.id}")
        else:
            answer = api.call("GET", "/api/v1/silences")
    except ApiError as exc:
        print(exc, file=sys.stderr)
        return 2
    body = answer.body
    if args.json:
        print_json(body)
        return 1 if answer.status >= 300 else 0
    if answer.status >= 300:
        print(f"error: {body.get('error')}", file=sys.stderr)
        return 1
    if args.silence_verb == "add":
        print(
            f"silence {body['id']}: rule {body['rule']} device {body['device']} "
            f"until {body['ends_at']}"
        )
    elif args.silence_verb == "remove":
        print(f"removed silence {body['removed']}")
    else:
        for s in body["silences"]:
            note = f"  ({s['comment']})" if s["comment"] else ""
            print(
                f"{s['id']:>4}  rule {s['rule']}  device {s['device']}  until {s['ends_at']}{note}"
            )
        if not body["silences"]:
            print("no active silences")
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    command = sub.add_parser(
        "command",
        parents=[common],
        help="send a command to a device by hand (same checks as rules)",
    )
    command.add_argument("device", help="a device listed under devices: in the config")
    command.add_argument(
        "settings",
        nargs="+",
        metavar="KEY=VALUE",
        help="e.g. speed=100 mode=auto (values as JSON, else text)",
    )
    add_json_flag(command, "the gateway's answer")
    command.set_defaults(func=_cmd_command)

    silence = sub.add_parser(
        "silence", parents=[common], help="mute notifications for a rule or device for a while"
    )
    verbs = silence.add_subparsers(dest="silence_verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", parents=[common], help="add a silence")
    add.add_argument("--rule", default="*", help="rule name or glob (default: every rule)")
    add.add_argument("--device", default="*", help="device id or glob (default: every device)")
    add.add_argument("--for", dest="duration", required=True, metavar="D", help="e.g. 1h, 30m")
    add.add_argument("--comment", default="", help="why (shown in the list)")
    listing = verbs.add_parser("list", parents=[common], help="list active silences")
    remove = verbs.add_parser("remove", parents=[common], help="remove a silence by id")
    remove.add_argument("id", type=int)
    for verb in (add, listing, remove):
        add_json_flag(verb, "the gateway's answer")
        verb.set_defaults(func=_cmd_silence)
