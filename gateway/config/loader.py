"""Load ``outpost.yaml``: environment, secret files, validation, positions.

Every problem is collected and reported together as ``file:line:col: message``
(a :class:`rules.yamlsrc.SourceError`) before the gateway connects anywhere.
Order of work: YAML with marks → ``${VAR}`` substitution in every string →
``*_file`` keys read into their secret → pydantic validation → checks that
need more than one key (topic templates, formats) → relative paths resolved
against the config file's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devices import catalog
from devices.modbus.profiles import is_path
from gateway.config.addresses import is_loopback, split_listen
from gateway.config.environment import substitute
from gateway.config.modbus import check_modbus
from gateway.config.schema import Config
from gateway.logsetup import printable
from gateway.topics import TemplateError, TopicTemplate
from gateway.yamlfiles import read_text
from rules.yamlsrc import (
    LocDict,
    LocList,
    Mark,
    Problem,
    SourceError,
    load_yaml,
    locate,
    locate_key,
)

DEFAULT_FILE = "outpost.yaml"
PACKET_HEADROOM = 64 * 1024  # an MQTT packet's topic (up to 64 KiB) and headers


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path | None  # None: built-in defaults
    base_dir: Path
    # The file as parsed, with the position of every value (None: built-in defaults).
    source: LocDict | None = field(default=None, compare=False, repr=False)

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def mark(self, *path: str | int) -> Mark:
        """Where ``path`` (e.g. ``"mqtt", "tls", "ca"``) is written, for an error message;
        the nearest enclosing value when it is not written (a default)."""
        if self.path is None:
            return Mark("built-in defaults (no config file)", 0, 0)
        origin = Mark(str(self.path), 1, 1)
        return locate(self.source, path, origin) if self.source is not None else origin


def find_config(explicit: str | None) -> Path | None:
    """``-c FILE`` if given, else ``./outpost.yaml`` if present, else None (defaults)."""
    if explicit:
        return Path(explicit)
    default = Path(DEFAULT_FILE)
    return default if default.exists() else None


def load_config(explicit: str | None = None, environ: dict[str, str] | None = None) -> LoadedConfig:
    """Load and validate the config; raise SourceError listing every problem."""
    path = find_config(explicit)
    if path is None:
        return LoadedConfig(Config(), None, Path.cwd())
    env = dict(os.environ if environ is None else environ)
    name = str(path)
    return parse_config(read_text(path), name, path.resolve().parent, env)


def parse_config(text: str, name: str, base_dir: Path, env: dict[str, str]) -> LoadedConfig:
    data = load_yaml(text, name)
    origin = Mark(name, 1, 1)
    if data is None:
        data = LocDict()
        data.mark, data.key_locs, data.locs = origin, {}, {}
    if not isinstance(data, LocDict):
        raise SourceError([Problem(origin, "the config must be a mapping of sections")])
    problems: list[Problem] = []
    substitute(data, env, problems)
    _read_secret_files(data, base_dir, problems)
    if problems:
        raise SourceError(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            find = locate_key if err["type"] == "extra_forbidden" else locate
            where = find(data, loc, origin)
            # "[key]": the error is in a mapping's key, which the path already names.
            field = printable(".".join(str(p) for p in loc if p != "[key]"))
            problems.append(Problem(where, f"{field}: {_message(err)}" if field else _message(err)))
        raise SourceError(problems) from None
    problems.extend(_cross_checks(config, data, origin))
    problems.extend(check_modbus(config, data, origin, base_dir))
    if problems:
        raise SourceError(problems)
    return LoadedConfig(_resolve_paths(config, base_dir), Path(name), base_dir, data)


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    """Make file paths relative to the config file's folder, not to where we were started."""

    def absolute(value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else base_dir / path)

    updates: dict[str, Any] = {
        "state_dir": absolute(config.state_dir),
        "rules": [absolute(r) for r in config.rules],
    }
    if config.modbus:
        updates["modbus"] = [_resolve_modbus(entry, absolute) for entry in config.modbus]
    tls = config.mqtt.tls
    if tls is not None:
        files = {k: absolute(v) for k in ("ca", "cert", "key") if (v := getattr(tls, k))}
        updates["mqtt"] = config.mqtt.model_copy(update={"tls": tls.model_copy(update=files)})
    return config.model_copy(update=updates)


def _resolve_modbus(entry: Any, absolute: Any) -> Any:
    update: dict[str, Any] = {}
    if entry.profile and is_path(entry.profile):
        update["profile"] = absolute(entry.profile)
    if entry.rtu is not None and entry.rtu.port.startswith("."):
        update["rtu"] = entry.rtu.model_copy(update={"port": absolute(entry.rtu.port)})
    return entry.model_copy(update=update) if update else entry


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _read_secret_files(node: Any, base_dir: Path, problems: list[Problem]) -> None:
    """``password_file: /x`` sets ``password`` to the file's first line (trailing newline cut)."""
    if isinstance(node, LocList):
        for item in node:
            _read_secret_files(item, base_dir, problems)
        return
    if not isinstance(node, LocDict):
        return
    for key in list(node):
        value = node[key]
        if key.endswith("_file") and isinstance(value, str) and value:
            stem = key.removesuffix("_file")
            mark = node.locs[key]
            if stem in node and node[stem] not in (None, ""):
                problems.append(Problem(mark, f"give {stem} or {key}, not both"))
                continue
            path = Path(value).expanduser()
            path = path if path.is_absolute() else base_dir / path
            try:
                secret = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                problems.append(Problem(mark, f"{key}: cannot read {path}: {reason}"))
                continue
            node[stem] = secret
            node.locs[stem] = mark
        else:
            _read_secret_files(value, base_dir, problems)


def _cross_checks(config: Config, data: LocDict, origin: Mark) -> list[Problem]:
    problems: list[Problem] = []
    formats = catalog.names()
    for i, spec in enumerate(config.inputs):
        try:
            template = TopicTemplate(spec.topic)
        except TemplateError as exc:
            problems.append(Problem(locate(data, ("inputs", i, "topic"), origin), str(exc)))
            continue
        if spec.format not in formats:
            problems.append(
                Problem(
                    locate(data, ("inputs", i, "format"), origin),
                    f"unknown format {spec.format!r}; known: {', '.join(formats)}",
                )
            )
            continue
        if spec.max_payload + PACKET_HEADROOM > config.mqtt.max_packet_size:
            problems.append(
                Problem(
                    locate(data, ("inputs", i, "max_payload"), origin),
                    f"max_payload {spec.max_payload} must be at least {PACKET_HEADROOM} bytes "
                    f"below mqtt.max_packet_size {config.mqtt.max_packet_size} (room for the "
                    "topic): the broker would drop such messages before they reach the gateway",
                )
            )
        if spec.format == "value" and "metric" not in template.fields and not spec.metric:
            problems.append(
                Problem(
                    locate(data, ("inputs", i, "topic"), origin),
                    "format value needs {metric} in the topic or a metric: key",
                )
            )
        needs_device = spec.format in ("value", "json")
        if (
            needs_device
            and "device" not in template.fields
            and not (spec.device or spec.device_field)
        ):
            problems.append(
                Problem(
                    locate(data, ("inputs", i, "topic"), origin),
                    "no device: put {device} in the topic, or set device: or device_field:",
                )
            )
    if not config.inputs:
        problems.append(Problem(locate(data, ("inputs",), origin), "inputs: at least one input"))
    problems.extend(_http_exposure(config, data, origin))
    return problems


def _http_exposure(config: Config, data: LocDict, origin: Mark) -> list[Problem]:
    """An API reachable from the network is read with the token only, so it needs one."""
    http = config.http
    if http.token is not None or is_loopback(split_listen(http.listen)[0]):
        return []
    return [Problem(locate(data, ("http", "listen"), origin),
                    f"http.listen: {http.listen} is reachable from the network, where reading "
                    "the API needs the bearer token: set http.token_file, or listen on "
                    "127.0.0.1")]
