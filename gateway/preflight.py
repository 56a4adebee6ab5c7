"""What ``outpost run`` checks before it connects anywhere; ``outpost config check`` runs the same.

The loader (:mod:`gateway.config.loader`) checks the config's shape. :func:`check`
checks everything the shape cannot say, so that a config ``outpost config check``
passes is one the gateway starts with, and every problem is reported in one
round as ``file:line:col: message``:

- each ``rules:`` entry that names one file (no ``*``, ``?`` or ``[``) exists,
  and every rule file reads and compiles;
- each command a rule sends to a named device passes the command policy
  (:meth:`gateway.actions.policy.CommandPolicy.rule_problems`): the device is
  listed under ``devices:``, each key is among its commands, each value of the
  declared type and within ``min``/``max``/``enum``;
- ``influx.url`` and every webhook are ``http://`` or ``https://`` URLs with a host;
- each input's format and each device's convention accept their options, each
  device id can be part of a topic, each serial sensor's profile exists;
- the files of ``mqtt.tls`` are readable and hold PEM certificates and a key
  that belong together (read as the MQTT clients read them);
- ``state_dir`` is not world-writable (:func:`gateway.statedir.world_writable`).

- ``http.listen`` can be listened on (bound for a moment and let go): an address
  that is not this machine's, or a name that does not resolve, is a problem.

What another process holds now — ``state_dir`` (another gateway's lock) or the
HTTP port — is listed apart, in :attr:`Checked.in_use`: the start refuses it, and
``config check``, usually run beside the very gateway that holds them, warns.

Nothing here connects anywhere or writes a file.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from devices import catalog, conventions
from devices.model import InvalidReading, check_device_id
from devices.profiles import get_profile
from gateway.actions.policy import CommandPolicy
from gateway.actions.rules_runtime import load_rule_files
from gateway.config import LoadedConfig
from gateway.config.addresses import split_listen
from gateway.config.security import redact_url
from gateway.serial.settings import mqtt_from_gateway
from gateway.statedir import held_by, holder, world_writable
from rules import Problem, RuleSet, SourceError

_GLOB = re.compile(r"[*?[]")


@dataclass(frozen=True)
class Checked:
    """A config that passed every check, with the rules it loaded and what another
    process holds now (``state_dir``, the HTTP port)."""

    loaded: LoadedConfig
    ruleset: RuleSet
    rule_files: list[Path]
    in_use: list[Problem]


def check(loaded: LoadedConfig) -> Checked:
    """Every check of the module doc; raises SourceError listing every problem."""
    problems: list[Problem] = []
    ruleset, files = _rules(loaded, problems)
    problems += CommandPolicy(loaded.config.devices).rule_problems(ruleset)
    for found in (_urls, _inputs, _devices, _serial, _tls, _state_dir):
        problems.extend(found(loaded))
    in_use = []
    held = holder(loaded.config.state_dir)
    busy = listen_error(loaded)
    if held is not None:  # the gateway that holds it most likely holds the port too
        state_dir = Path(loaded.config.state_dir).resolve()
        in_use.append(Problem(loaded.mark("state_dir"), held_by(state_dir, held)))
    elif busy is not None and busy.errno == errno.EADDRINUSE:
        in_use.append(listen_problem(loaded, busy))
    if busy is not None and busy.errno != errno.EADDRINUSE:
        problems.append(listen_problem(loaded, busy))
    if problems:
        raise SourceError(problems)
    return Checked(loaded, ruleset, files, in_use)


def _rules(loaded: LoadedConfig, problems: list[Problem]) -> tuple[RuleSet, list[Path]]:
    patterns = loaded.config.rules
    for i, pattern in enumerate(patterns):
        if not _GLOB.search(pattern) and not Path(pattern).is_file():
            problems.append(Problem(loaded.mark("rules", i), f"rules: no such file {pattern}"))
    try:
        return load_rule_files(patterns)
    except SourceError as exc:
        problems.extend(exc.problems)
        return RuleSet(()), []


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL a client can use, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "needs http:// or https:// in front"
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "has a port that is not a number"
    if not parts.hostname:
        return "has no host"
    return None


def _urls(loaded: LoadedConfig) -> Iterator[Problem]:
    cfg = loaded.config
    if "/" in cfg.mqtt.host:
        yield Problem(
            loaded.mark("mqtt", "host"),
            "mqtt.host: a host name or address, not a URL (the port goes in mqtt.port)",
        )
    why = url_problem(cfg.influx.url)
    if why:
        shown = redact_url(cfg.influx.url)
        yield Problem(
            loaded.mark("influx", "url"), f"influx.url: {shown} {why} (e.g. http://localhost:8086)"
        )
    for name, notifier in cfg.notify.items():
        if notifier.webhook is None:
            continue
        why = url_problem(notifier.webhook.get_secret_value())
        if why:  # the URL itself is a secret: name the notifier only
            yield Problem(
                loaded.mark("notify", name, "webhook"), f"notify.{name}.webhook: the URL {why}"
            )


def _inputs(loaded: LoadedConfig) -> Iterator[Problem]:
    for i, spec in enumerate(loaded.config.inputs):
        try:
            catalog.get(spec.format)(spec.model_dump())
        except (KeyError, ValueError) as exc:
            yield Problem(loaded.mark("inputs", i, "format"), f"inputs: {_text(exc)}")


def _devices(loaded: LoadedConfig) -> Iterator[Problem]:
    cfg = loaded.config
    for name, device in cfg.devices.items():
        try:
            check_device_id(name)
        except InvalidReading as exc:
            yield Problem(loaded.mark("devices", name), f"devices: {exc}")
            continue
        try:  # as the dispatcher builds it
            convention = conventions.create(
                device.convention, {"src": cfg.mqtt.client_id, **device.model_dump()}
            )
            convention.ack_subscriptions(name)
        except (KeyError, ValueError) as exc:
            yield Problem(
                loaded.mark("devices", name, "convention"), f"devices.{name}: {_text(exc)}"
            )


def _serial(loaded: LoadedConfig) -> Iterator[Problem]:
    for i, entry in enumerate(loaded.config.serial):
        try:
            check_device_id(entry.device)
        except InvalidReading as exc:
            yield Problem(loaded.mark("serial", i, "device"), f"serial: {exc}")
        if entry.profile:
            try:
                get_profile(entry.profile)
            except KeyError as exc:
                yield Problem(loaded.mark("serial", i, "profile"), f"serial: {_text(exc)}")


def _tls(loaded: LoadedConfig) -> Iterator[Problem]:
    mqtt = loaded.config.mqtt
    if mqtt.tls is None:
        return
    unreadable = False
    for key in ("ca", "cert", "key"):
        path = getattr(mqtt.tls, key)
        if path is None:
            continue
        try:
            Path(path).read_bytes()
        except OSError as exc:
            unreadable = True
            yield Problem(
                loaded.mark("mqtt", "tls", key),
                f"mqtt.tls.{key}: cannot read {path}: {exc.strerror}",
            )
    if unreadable:
        return
    try:  # the context the serial bridges use; the MQTT clients load the same files
        mqtt_from_gateway(mqtt)
    except (ssl.SSLError, OSError) as exc:
        yield Problem(
            loaded.mark("mqtt", "tls"),
            f"mqtt.tls: not PEM certificates with their key "
            f"({getattr(exc, 'reason', None) or exc})",
        )


def _state_dir(loaded: LoadedConfig) -> Iterator[Problem]:
    unsafe = world_writable(Path(loaded.config.state_dir))
    if unsafe:
        yield Problem(loaded.mark("state_dir"), unsafe)


def _text(exc: Exception) -> str:
    """An exception's message; a KeyError's without the quotes str() adds."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


# --- the HTTP address -------------------------------------------------------------------


def listen_problem(loaded: LoadedConfig, exc: OSError) -> Problem:
    """Why ``http.listen`` could not be bound, and what to change, at its line."""
    listen = loaded.config.http.listen
    host, port = split_listen(listen)
    if exc.errno == errno.EADDRINUSE:
        why = "is already in use (another outpost? change http.listen)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = f"is not an address of this machine ({host}; change http.listen)"
    elif exc.errno == errno.EACCES:
        why = f"needs privileges (port {port}): choose a port above 1023"
    elif isinstance(exc, socket.gaierror):
        why = f"names a host that does not resolve ({host}; change http.listen)"
    else:
        why = f"cannot be listened on: {exc.strerror or exc}"
    return Problem(loaded.mark("http", "listen"), f"http.listen {listen} {why}")


def listen_error(loaded: LoadedConfig) -> OSError | None:
    """Bind ``http.listen`` as the HTTP server will, and let go: the error, or None."""
    host, port = split_listen(loaded.config.http.listen)
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        return exc
    return None
