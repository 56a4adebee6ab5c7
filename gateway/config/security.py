"""Security helpers: config-file permission checks, exposure warnings, secret redaction.

Secrets in Outpost are the MQTT and InfluxDB passwords and tokens, the API
token and webhook URLs (which carry keys in their path or query: Slack,
Discord, ntfy with ``?auth=``). The config keeps them as ``SecretStr`` so a
repr never shows them; this module covers what ``SecretStr`` cannot:

- :func:`check_permissions` — a config file that holds secrets inline, a
  ``*_file`` secret or a TLS private key that every local user can read;
- :func:`check_exposure` — settings that send a secret in clear text;
- :func:`redact_url` / :func:`redact_urls_in` — URLs with ``user:password@``
  or key-like query parameters, for logs and error messages (aiohttp and
  yarl put the whole URL in some exception texts);
- :class:`RedactingFilter` / :func:`install_log_redaction` — a last line of
  defence: every log record (message and traceback) has every configured
  secret value replaced by ``***`` before a handler writes it.

Nothing here connects anywhere or changes a file: checks return warnings as
strings, for the CLI to log at start and print in ``outpost config check``.
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.config.addresses import is_loopback
from gateway.config.environment import written_in_file
from gateway.yamlfiles import read_text
from rules.yamlsrc import SourceError, load_yaml

if TYPE_CHECKING:
    from gateway.config import LoadedConfig
    from gateway.config.schema import Config

__all__ = [
    "MASK",
    "RedactingFilter",
    "check_exposure",
    "check_permissions",
    "inline_secret_keys",
    "install_log_redaction",
    "redact_url",
    "redact_urls_in",
    "secret_values",
    "startup_warnings",
]

MASK = "***"

# Config keys holding a secret inline, by section path ("*" = every notifier).
_INLINE_SECRETS = (
    ("mqtt", "password"),
    ("influx", "token"),
    ("influx", "password"),
    ("http", "token"),
    ("notify", "*", "webhook"),
)
# Query parameters that carry credentials in the wild (ntfy ?auth=, InfluxDB 1.x ?p=…).
_SECRET_PARAMS = re.compile(
    r"^(?:p|u|pass|password|passwd|pwd|secret|token|access_token|auth|authorization|key|"
    r"apikey|api_key|api-key|sig|signature|code|client_secret)$",
    re.IGNORECASE,
)
_HEADER_SECRET = re.compile(r"auth|token|key|secret|password|cookie", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


# --- permissions ----------------------------------------------------------------------------


def _world_readable(path: Path) -> bool | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return bool(mode & stat.S_IROTH)


def _walk(data: Any, keys: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """Values at ``keys`` in nested mappings, with their dotted name."""
    if not keys:
        yield "", data
        return
    if not isinstance(data, dict):
        return
    head, rest = keys[0], keys[1:]
    items = list(data.items()) if head == "*" else [(head, data.get(head))]
    for name, value in items:
        for sub, found in _walk(value, rest):
            yield f"{name}.{sub}" if sub else str(name), found


def inline_secret_keys(text: str) -> list[str]:
    """Dotted names of secrets written literally in a config file's text (not ``${VAR}``)."""
    try:
        # Read as the loader reads it, so ``password: yes`` is the string it will send.
        data = load_yaml(text, "config")
    except SourceError:
        return []
    found = []
    for keys in _INLINE_SECRETS:
        for name, value in _walk(data, keys):
            if isinstance(value, str) and written_in_file(value).strip():
                found.append(name)
    for name, value in _walk(data, ("influx", "url")):
        if isinstance(value, str) and "@" in value and written_in_file(value) == value:
            try:
                if urlsplit(value).password:
                    found.append(name)  # http://user:password@host
            except ValueError:
                pass
    return found


def _secret_files(config: Config) -> Iterator[tuple[str, str]]:
    mqtt, influx, http = config.mqtt, config.influx, config.http
    for key, value in (("mqtt.password_file", mqtt.password_file),
                       ("influx.token_file", influx.token_file),
                       ("influx.password_file", influx.password_file),
                       ("http.token_file", http.token_file)):
        if value:
            yield key, value
    for name, notifier in config.notify.items():
        if notifier.webhook_file:
            yield f"notify.{name}.webhook_file", notifier.webhook_file
    if mqtt.tls is not None and mqtt.tls.key:
        yield "mqtt.tls.key", mqtt.tls.key


def check_permissions(loaded: LoadedConfig) -> list[str]:
    """Warnings for secrets that every local user can read.

    - the config file, when it holds a secret inline (not ``*_file`` or ``${VAR}``);
    - every ``*_file`` secret and the MQTT TLS private key.
    Fix with ``chmod 600 FILE`` (owned by the user the gateway runs as).
    """
    warnings: list[str] = []
    path = loaded.path
    if path is not None:
        try:
            text = read_text(path)
        except SourceError:
            text = ""
        inline = inline_secret_keys(text)
        if inline and _world_readable(path):
            warnings.append(
                f"{path} holds secrets inline ({', '.join(inline)}) and every local user "
                f"can read it: chmod 600 {path}, or move them to *_file keys"
            )
        try:
            if path.stat().st_mode & stat.S_IWOTH:
                warnings.append(f"{path} is world-writable: anyone here can change what the "
                                f"gateway commands; chmod o-w {path}")
        except OSError:
            pass
    for key, value in _secret_files(loaded.config):
        file = loaded.resolve(value)
        if _world_readable(file):
            warnings.append(f"{key} {file} is readable by every local user: chmod 600 {file}")
    return warnings


def check_exposure(loaded: LoadedConfig) -> list[str]:
    """Warnings for settings that send secrets in clear text."""
    config = loaded.config
    warnings: list[str] = []
    mqtt = config.mqtt
    if mqtt.password is not None and mqtt.tls is None and not is_loopback(mqtt.host):
        warnings.append(f"mqtt: the password goes to {mqtt.host} in clear text; "
                        "set mqtt.tls (see README, Securing your gateway)")
    if mqtt.tls is not None and mqtt.tls.insecure:
        warnings.append("mqtt.tls.insecure: the broker's hostname is NOT checked; anyone on "
                        "the network path can impersonate it")
    influx = config.influx
    secret = influx.token is not None or influx.password is not None
    parts = urlsplit(influx.url)
    if secret and parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        warnings.append(f"influx: credentials go to {parts.hostname} over plain http; "
                        "use an https:// url")
    # An API on the network without a token is refused by the loader, not warned about.
    return warnings


def startup_warnings(loaded: LoadedConfig) -> list[str]:
    """Everything :func:`check_permissions` and :func:`check_exposure` find."""
    return check_permissions(loaded) + check_exposure(loaded)


# --- redaction ----------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without ``user:password@`` and with key-like query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_PARAMS.match(k) else v) for k, v in pairs],
                          safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls_in(text: str) -> str:
    """Every URL inside ``text`` passed through :func:`redact_url` (for exception texts)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def secret_values(config: Config) -> list[str]:
    """Every secret value of ``config`` (longest first), for :class:`RedactingFilter`."""
    values: list[str] = []

    def add(secret: Any) -> None:
        if secret is not None:
            text = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
            if isinstance(text, str) and len(text) >= 4:  # a 1-3 char mask would eat the log
                values.append(text)

    add(config.mqtt.password)
    add(config.influx.token)
    add(config.influx.password)
    add(config.http.token)
    for notifier in config.notify.values():
        add(notifier.webhook)
        for name, value in notifier.headers.items():
            if _HEADER_SECRET.search(name) and "{" not in value:
                add(value)
    return sorted(set(values), key=len, reverse=True)


class RedactingFilter(logging.Filter):
    """Replace every secret in a record's message and traceback by ``***``.

    Attach it to handlers (a filter on a logger does not see records that
    propagate from child loggers). The record is formatted here, once, so
    arguments that carry a secret are covered too.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        clean = self._clean(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            clean = self._clean(record.exc_text)
            if clean != record.exc_text:
                # A formatter that formats exc_info itself would bring the secret back;
                # the standard one prints exc_text, which is now clean.
                record.exc_text, record.exc_info = clean, None
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


def install_log_redaction(config: Config, logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` for ``config``'s secrets to every handler of ``logger``
    (the root logger by default). Call after logging is set up."""
    target = logger or logging.getLogger()
    flt = RedactingFilter(secret_values(config))
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(flt)

