"""One broker connection's failures: in the log with their reason, and in the status.

Both broker connections retry by themselves with capped exponential backoff: the
ingest connection (:mod:`gateway.mqtt.receiver`, the gateway's own client) and the
link (paho, which says nothing). :class:`ConnectionWatch` is told about every
attempt that fails — the socket (refused, DNS, timeout), TLS (with the subject of
the certificate the broker presented), a connection the broker closes before it
answers, or the broker's CONNACK (bad login, not authorized) — and

- logs it with its reason once per backoff step while the waits still grow,
  then at most once a minute (a changed reason is logged at once);
- keeps a :class:`~gateway.health.Health` the status shows (``broker`` in
  ``/api/v1/status``, the MQTT line of ``outpost status``).

The owner of a connection reports with :meth:`attempt_failed`,
:meth:`login_refused`, :meth:`closed_unanswered`, :meth:`up` and :meth:`lost`; a
paho client is followed with :meth:`attach` and the paho-shaped :meth:`refused`,
:meth:`connected` and :meth:`closed`. Its methods run on any thread (the reason of
an untrusted certificate is looked up with a connection of its own: not on an
event loop).
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config.schema import MqttConfig
from gateway.health import Health
from gateway.logsetup import Throttled
from gateway.mqtt.client import reconnect_delays
from gateway.mqtt.peercert import presented_by
from gateway.mqtt.wire import ProtocolError
from gateway.retry import Backoff

log = logging.getLogger("outpost.mqtt")

REPEAT_EVERY = 60.0  # seconds between two lines about the same failure once the waits are capped

# X509_V_ERR_* codes of a certificate the gateway does not trust, and what to check.
_NOT_TRUSTED = {18, 19, 20, 21}  # self-signed, self-signed in chain, no issuer, leaf unverified
_HOSTNAME_MISMATCH = 62
_EXPIRED = 10
_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)$")  # where in CPython the error was raised


class ConnectionWatch:
    def __init__(
        self,
        cfg: MqttConfig,
        name: str,
        *,
        steps: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = time.time_ns,
    ) -> None:
        self._cfg = cfg
        self.name = name
        self._wall = wall
        if steps is None:
            # paho doubles its wait after each failure up to the longest: one step each.
            shortest, longest = reconnect_delays(cfg)
            steps = Backoff(base=shortest, cap=longest, jitter=0.0)
        self._steps = steps  # the owner's waits between attempts: their ceilings are the steps
        self._longest = steps.cap
        self._log = Throttled(log, REPEAT_EVERY, clock)
        self._lock = threading.Lock()
        self._health = Health("unknown", f"{cfg.host}:{cfg.port}")
        self._answered = False  # the broker sent a CONNACK for the current attempt
        self._paho_error: str | None = None  # paho's last error line in the current attempt

    def health(self) -> Health:
        with self._lock:
            return self._health

    def attach(self, client: mqtt.Client) -> None:
        """Follow ``client``'s attempts (its owner still reports CONNACKs and disconnects)."""
        client.on_pre_connect = self._on_pre_connect
        client.on_connect_fail = self._on_connect_fail

    # paho callbacks and what the connection's owner reports ---------------------------

    def _on_pre_connect(self, client: mqtt.Client, userdata: object) -> None:
        # Until the broker answers, note paho's own error lines: when the broker closes the
        # connection before its CONNACK (a TLS alert after the handshake, say), they are
        # the only place the reason appears. Off again once connected: paho formats a
        # line for every packet when on_log is set.
        self._answered = False
        self._paho_error = None
        client.on_log = self._on_log

    def _on_log(self, client: mqtt.Client, userdata: object, level: int, line: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            self._paho_error = line

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        """The socket, DNS or TLS step failed (paho's ``on_connect_fail``)."""
        self.attempt_failed(getattr(client, "connect_error", None))

    def refused(self, reason: ReasonCode) -> None:
        """paho: the broker answered the CONNECT with a failure."""
        self._answered = True
        self.login_refused(str(reason), reason.value)

    def connected(self, client: mqtt.Client) -> None:
        """paho: the broker accepted the CONNECT."""
        self._answered = True
        client.on_log = None
        self.up()

    def closed(self, reason: ReasonCode, was_connected: bool) -> None:
        """paho: the connection ended, lost after it was up or closed before the broker
        answered."""
        if not reason.is_failure:
            return  # our own disconnect
        if was_connected:
            self.lost(str(reason))
        elif not self._answered:
            self.closed_unanswered(self._paho_error or str(reason))

    # what the owner of a connection reports ---------------------------------------------

    def attempt_failed(self, exc: BaseException | None) -> None:
        """The socket, DNS or TLS step failed, or the broker broke the protocol."""
        kind, level, reason = self.explain(exc)
        self._failed(kind, level, reason)

    def login_refused(self, reason: str, code: int) -> None:
        """The broker answered the CONNECT with a failure (bad login, not authorized …)."""
        who = f"the login {self._cfg.username!r}" if self._cfg.username else "an anonymous login"
        self._failed(f"connack-{code}", logging.ERROR,
                     f"the broker refused {who}: {reason} (CONNACK reason code {code})")

    def closed_unanswered(self, detail: str) -> None:
        """The broker closed the connection before its CONNACK (``detail``: what was read)."""
        self._failed("closed", logging.ERROR, self._closed_early(detail))

    def up(self) -> None:
        with self._lock:
            self._health = self._health.succeeded(self._wall())

    def lost(self, why: str, step: int | None = None) -> None:
        """A connection that was up went down. With ``step`` (the owner's backoff step for
        the next attempt) the line is held to one per step like a failed attempt's."""
        with self._lock:
            self._health = self._health.down(f"connection lost ({why})", self._wall())
        line = "MQTT %s: lost the broker connection to %s (%s); reconnecting"
        if step is None:
            log.warning(line, self.name, self._health.target, why)
        else:
            self._log.log(f"lost@{self._steps.ceiling(step):g}", logging.WARNING, line,
                          self.name, self._health.target, why)

    def _failed(self, kind: str, level: int, reason: str) -> None:
        with self._lock:
            self._health = health = self._health.failed(reason, self._wall())
        # One key per backoff step: each step is logged, and once the waits stop growing
        # the key stays the same and is held to one line a minute.
        step = self._steps.ceiling(health.failures)
        self._log.log(f"{kind}@{step:g}", level,
                      "MQTT %s: cannot connect to the broker at %s: %s; attempt %d failed, "
                      "retrying with waits growing to %g s", self.name, health.target, reason,
                      health.failures, self._longest)

    # reasons -------------------------------------------------------------------------------

    def explain(self, exc: BaseException | None) -> tuple[str, int, str]:
        """``(kind, log level, reason)`` for a failed attempt."""
        cfg = self._cfg
        if exc is None:
            return "unknown", logging.WARNING, "no reason given"
        if isinstance(exc, ProtocolError):
            return "protocol", logging.ERROR, f"protocol error: {exc}"
        if not isinstance(exc, OSError):
            return type(exc).__name__, logging.ERROR, f"{type(exc).__name__}: {exc}"
        if isinstance(exc, socket.gaierror):
            return "dns", logging.WARNING, f"cannot resolve {cfg.host!r} (DNS: {exc.strerror})"
        if isinstance(exc, ConnectionRefusedError):
            return "refused", logging.WARNING, (
                f"connection refused (is the broker running and listening on port {cfg.port}?)")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return "tls-verify", logging.ERROR, self._untrusted(exc)
        if isinstance(exc, ssl.SSLError):
            return "tls", logging.ERROR, f"TLS handshake failed: {exc.reason or exc}"
        if isinstance(exc, TimeoutError):
            return "timeout", logging.WARNING, "no answer (timed out)"
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        return f"os-{name}", logging.WARNING, f"{exc.strerror or exc} ({name})"

    def _closed_early(self, detail: str) -> str:
        detail = _SSL_SOURCE.sub("", detail.removeprefix("failed to receive on socket: "))
        text = f"the broker closed the connection before answering the login: {detail}"
        lowered = detail.lower()
        if "certificate required" in lowered:
            return text + "; it wants a client certificate (mqtt.tls.cert and mqtt.tls.key)"
        if any(alert in lowered for alert in ("unknown ca", "bad certificate", "expired")):
            return text + "; it does not accept the gateway's client certificate (mqtt.tls.cert)"
        return text

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> str:
        code = exc.verify_code
        if code in _NOT_TRUSTED:
            hint = "is mqtt.tls.ca the CA that signed the broker's certificate?"
        elif code == _HOSTNAME_MISMATCH:
            hint = f"mqtt.host {self._cfg.host!r} must be a name the certificate holds"
        elif code == _EXPIRED:
            hint = "the broker needs a new certificate"
        else:
            hint = "check mqtt.tls"
        presented = presented_by(self._cfg) or "certificate not readable"
        return (f"TLS: the broker's certificate is not trusted: {exc.verify_message} "
                f"({presented}); {hint}")
