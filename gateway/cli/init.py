"""``outpost init``: a commented starter ``outpost.yaml`` and a rules file with one rule.

The broker, InfluxDB (1.x: a database; 2.x: org, bucket and a token file) and
the HTTP address come from flags; on a terminal without any of them, from
questions. The config names one input (JSON objects on ``sensors/{device}``, as
``outpost simulate`` publishes them) and ``rules.d/*.yaml`` next to it, where
the starter rule goes. Nothing is overwritten without ``--force``. The result is
then put through the checks of ``outpost config check``; what they find (a token
file not written yet) is printed as what is left to do.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import preflight
from gateway.cli.common import add_json_flag, command_name, print_json, problem_line
from gateway.config import load_config
from gateway.config.loader import DEFAULT_FILE
from rules.yamlsrc import SourceError

RULES_DIR = "rules.d"
RULES_FILE = "starter.yaml"


@dataclass
class Answers:
    broker: str = "localhost:1883"
    mqtt_user: str = ""
    mqtt_password_file: str = ""
    influx_url: str = "http://localhost:8086"
    influx_db: str = "outpost"
    influx_org: str = ""
    influx_bucket: str = ""
    influx_token_file: str = ""
    listen: str = "127.0.0.1:8080"

    @property
    def influx_v2(self) -> bool:
        return bool(self.influx_org or self.influx_bucket or self.influx_token_file)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "init",
        parents=[common],
        help="write a commented starter outpost.yaml and a rules file",
        description="Write a starter config (-c FILE, default ./outpost.yaml) and "
        f"{RULES_DIR}/{RULES_FILE} beside it. Without flags, on a terminal, it asks.",
    )
    p.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker (default localhost:1883)")
    p.add_argument("--mqtt-user", metavar="NAME", help="MQTT user name")
    p.add_argument("--mqtt-password-file", metavar="FILE", help="file holding the MQTT password")
    p.add_argument("--influx-url", metavar="URL", help="InfluxDB (default http://localhost:8086)")
    p.add_argument("--influx-db", metavar="NAME", help="InfluxDB 1.x database (default outpost)")
    p.add_argument("--influx-org", metavar="ORG", help="InfluxDB 2.x organisation")
    p.add_argument("--influx-bucket", metavar="BUCKET", help="InfluxDB 2.x bucket")
    p.add_argument("--influx-token-file", metavar="FILE", help="file holding the 2.x API token")
    p.add_argument(
        "--listen", metavar="HOST:PORT", help="dashboard and API address (default 127.0.0.1:8080)"
    )
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    add_json_flag(p, "the files written")
    p.set_defaults(func=_cmd_init)


_FLAGS = tuple(f.name for f in fields(Answers))


def _cmd_init(args: argparse.Namespace) -> int:
    given = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None}
    try:
        if given:
            answers = _from_flags(given)
        elif sys.stdin.isatty() and sys.stdout.isatty():
            answers = _ask()
        else:
            answers = Answers()
    except ValueError as exc:
        print(f"outpost init: {exc}", file=sys.stderr)
        return 2
    except EOFError:
        print("\noutpost init: no answer; nothing written", file=sys.stderr)
        return 1
    config = Path(args.config or DEFAULT_FILE)
    rules = config.parent / RULES_DIR / RULES_FILE
    if config.exists() and not args.force:
        print(f"outpost init: {config} exists; not overwritten (--force replaces it)",
              file=sys.stderr)  # fmt: skip
        return 2
    written, kept = [], []
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(render_config(answers, config), encoding="utf-8")
    written.append(str(config))
    if rules.exists() and not args.force:
        kept.append(str(rules))
    else:
        rules.parent.mkdir(parents=True, exist_ok=True)
        rules.write_text(STARTER_RULES, encoding="utf-8")
        written.append(str(rules))
    todo = _left_to_do(config)
    me = command_name()
    steps = [f"{me} config check -c {config}", f"{me} run -c {config}"]
    if args.json:
        print_json({"written": written, "kept": kept, "to_do": todo, "next": steps})
        return 0
    for path in written:
        print(f"wrote {path}")
    for path in kept:
        print(f"kept {path} (it exists; --force replaces it)")
    if todo:
        print("before the gateway can start:")
        print("\n".join(f"  {line}" for line in todo))
    print("next:")
    print("\n".join(f"  {step}" for step in steps))
    return 0


def _left_to_do(config: Path) -> list[str]:
    """What ``outpost config check`` would still say about the new config."""
    try:
        preflight.check(load_config(str(config)))
    except SourceError as exc:
        return [problem_line(p) for p in exc.problems]
    return []


# --- answers ---------------------------------------------------------------------------


def _host_port(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. localhost:1883)")
    return text.strip()


def _url(text: str) -> str:
    why = preflight.url_problem(text.strip())
    if why:
        raise ValueError(f"{text!r} {why}")
    return text.strip()


def _word(text: str) -> str:
    if not text.strip():
        raise ValueError("cannot be empty")
    return text.strip()


_CHECKS: dict[str, Callable[[str], str]] = {
    "broker": _host_port,
    "listen": _host_port,
    "influx_url": _url,
    "influx_db": _word,
}


def _from_flags(given: dict[str, str]) -> Answers:
    answers = Answers(**{k: _CHECKS.get(k, str)(v) for k, v in given.items()})
    v2 = (answers.influx_org, answers.influx_bucket, answers.influx_token_file)
    if any(v2) and not all(v2):
        raise ValueError("InfluxDB 2.x needs --influx-org, --influx-bucket and --influx-token-file")
    if any(v2) and "influx_db" in given:
        raise ValueError("give --influx-db (1.x) or --influx-org/--influx-bucket (2.x), not both")
    if answers.mqtt_password_file and not answers.mqtt_user:
        raise ValueError("--mqtt-password-file needs --mqtt-user")
    return answers


def _ask() -> Answers:
    """Questions on the terminal; Enter keeps the default shown in brackets."""
    a = Answers()
    print("A starter outpost.yaml: Enter keeps the [default].")
    a.broker = _question("MQTT broker, HOST:PORT", a.broker, _host_port)
    a.mqtt_user = _question("MQTT user name (empty: none)", "", str)
    if a.mqtt_user:
        a.mqtt_password_file = _question("file holding its password", "mqtt.pass", _word)
    version = _question("InfluxDB version, 1 or 2", "1", _one_or_two)
    a.influx_url = _question("InfluxDB URL", a.influx_url, _url)
    if version == "2":
        a.influx_org = _question("InfluxDB organisation", "", _word)
        a.influx_bucket = _question("bucket", "sensors", _word)
        a.influx_token_file = _question("file holding the API token", "influx.token", _word)
    else:
        a.influx_db = _question("database", a.influx_db, _word)
    return a


def _one_or_two(text: str) -> str:
    if text.strip() not in ("1", "2"):
        raise ValueError("answer 1 or 2")
    return text.strip()


def _question(prompt: str, default: str, check: Callable[[str], str]) -> str:
    while True:
        shown = f" [{default}]" if default else ""
        answer = input(f"{prompt}{shown}: ").strip() or default
        try:
            return check(answer)
        except ValueError as exc:
            print(f"  {exc}")


# --- the files ---------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@-]*")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "~"}


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: bare when that reads back as the same string, else quoted."""
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS and not _number(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _path_for(config_dir: Path, given: str) -> str:
    """A file named on the command line, as the config (relative to its folder) names it."""
    path = Path(given).expanduser().absolute()
    try:
        return str(path.relative_to(config_dir.absolute()))
    except ValueError:
        return str(path)


def render_config(a: Answers, config: Path) -> str:
    """The commented config for ``a``, to be written at ``config``."""
    config_dir = config.parent
    host, _, port = a.broker.rpartition(":")
    if a.mqtt_user:
        login = (
            f"  username: {_scalar(a.mqtt_user)}\n"
            f"  password_file: {_scalar(_path_for(config_dir, a.mqtt_password_file))}"
            "    # the password alone on its first line; chmod 600\n"
            if a.mqtt_password_file
            else f"  username: {_scalar(a.mqtt_user)}\n"
        )
    else:
        login = (
            "  # username: outpost\n"
            "  # password_file: mqtt.pass    # the password alone on its first line; chmod 600\n"
        )
    if a.influx_v2:
        influx = (
            "influx:                            # InfluxDB 2.x (or 3.x)\n"
            f"  url: {_scalar(a.influx_url)}\n"
            f"  org: {_scalar(a.influx_org)}\n"
            f"  bucket: {_scalar(a.influx_bucket)}\n"
            f"  token_file: {_scalar(_path_for(config_dir, a.influx_token_file))}"
            "    # a token that may write to the bucket; chmod 600\n"
        )
    else:
        influx = (
            "influx:                            # InfluxDB 1.x\n"
            f"  url: {_scalar(a.influx_url)}\n"
            f"  database: {_scalar(a.influx_db)}    # created when missing\n"
            "  # username: outpost\n"
            "  # password_file: influx.pass\n"
            "  # For InfluxDB 2.x instead of database: org, bucket and token_file.\n"
        )
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    return f"""\
# Outpost gateway configuration, written by `outpost init` on {today}.
# Check it:  outpost config check -c {config.name}      Run it:  outpost run -c {config.name}
# Every key with its default is in README.md (Configuration); `outpost schema` writes
# the full schema. Relative paths are relative to this file's folder.

mqtt:
  host: {_scalar(host)}
  port: {port}
  client_id: outpost-gw              # fixed: the broker keeps our session while we restart
{login}
inputs:
  # JSON objects on sensors/<device>; each scalar field is a metric and "ts" the reading's
  # time (epoch s/ms/us/ns or RFC 3339), e.g.
  #   sensors/gh-1  {{"temperature": 21.5, "humidity": 40, "ts": 1795755841}}
  - topic: "sensors/{{device}}"
    format: json
    time_field: ts
  # One value per topic instead (sensors/gh-1/temperature  21.5):
  # - topic: "sensors/{{device}}/{{metric}}"
  #   format: value

{influx}
# Rule files, re-read when they change. {RULES_DIR}/{RULES_FILE} has one rule to start from.
rules: ["{RULES_DIR}/*.yaml"]

# Devices the rules (and `outpost command`) may command, and what each accepts:
# devices:
#   fan-1:
#     commands: {{speed: {{type: int, min: 0, max: 100}}}}

http:
  listen: {_scalar(a.listen)}    # the dashboard and the API
  # token_file: api.token            # bearer token for changes; needed off 127.0.0.1

state_dir: ./var                     # the event journal and the outbox
"""


STARTER_RULES = f"""\
# Rules for Outpost, written by `outpost init`. Check them with
#   outpost rules check {RULES_DIR}/{RULES_FILE}
# The rule language is in README.md (Rules).
rules:
  - name: temperature_high
    description: a sensor has read above 30 °C for five minutes
    match: {{metric: temperature}}
    when: value > 30
    for: 5m
    clear: value < 28                # hysteresis: resolves below 28 °C
    severity: warning
    message: "{{device}} is {{value:.1f}} °C"
    # With fan-1 listed under devices: in outpost.yaml, the rule can act:
    # actions:
    #   - command: {{device: fan-1, set: {{speed: 100}}}}
    # on_resolved:
    #   - command: {{device: fan-1, set: {{speed: 0}}}}
"""
