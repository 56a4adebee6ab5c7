"""Real services for end-to-end tests and benchmarks: Mosquitto, InfluxDB 1.x, VictoriaMetrics.

Each service is a subprocess on a free 127.0.0.1 port, with its files (config, data, log)
in a temporary directory. Lifecycle::

    svc = Mosquitto()          # nothing runs yet; ports are chosen at start()
    svc.start()                # returns once the service answers its own protocol
    svc.restart() / .stop() / .kill()   # same port and data directory
    svc.close()                # stop, then remove the temporary directory

or ``with Mosquitto() as broker: ...``. ``start()`` raises :class:`ServiceError` with the
tail of the service's log when the service does not answer within ``start_timeout``:
tests fail loudly, never skip (DESIGN.md §8).

No pytest in here: benchmarks import this module too (``from tests.services import ...``
from the repository root).

Children die with the process that started them (``PR_SET_PDEATHSIG``, when started from
the main thread), and an ``atexit`` hook stops whatever is still running, so a crashed
test run leaves no broker or database behind.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = [
    "InfluxDB",
    "InfluxError",
    "Mosquitto",
    "Service",
    "ServiceError",
    "VictoriaMetrics",
    "free_port",
    "http_request",
    "mqtt_connack_probe",
    "quote_ident",
    "quote_string",
]

HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service did not start, or stopped answering."""


class InfluxError(RuntimeError):
    """InfluxDB answered a query or write with an error."""


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now.

    Chosen *below* the kernel's ephemeral range: a port from that range, free when
    picked, can be taken a moment later as the local port of any outgoing connection
    (a test client, the gateway's own HTTP client) before the service binds it. Ports
    already handed out by this process are not handed out again. Another process may
    still take one first; :meth:`Service.start` retries with new ports when the service
    reports "address already in use".
    """
    low, _ = _ephemeral_range()
    start = max(1024, low - 20000)
    for _ in range(200):
        port = random.randrange(start, low)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # crowded: let the kernel pick
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with the standard library; any status is returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers.items()), e.read()


# --- process plumbing -------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_running: set[Service] = set()
_running_lock = threading.Lock()
# Resolved once here: the child, between fork and exec, should run as little as possible.
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        left = list(_running)
    for svc in left:
        with contextlib.suppress(Exception):
            svc.stop(timeout=5)


def _listening_inode(port: int) -> str | None:
    """Inode of the socket listening on 127.0.0.1:port, from /proc/net/tcp (Linux)."""
    want = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if f[1] == want and f[3] == "0A":  # 0A = LISTEN
            return f[9]
    return None


def _owns_port(pid: int, port: int) -> bool:
    """Whether process `pid` is the one listening on `port`, not some other process that
    grabbed the port between :func:`free_port` and our bind (parallel test runs)."""
    inode = _listening_inode(port)
    if inode is None:
        return False
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True  # no /proc: cannot tell, trust the protocol check
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
    return False


class Service:
    """A server process on free loopback ports, in its own temporary directory.

    Subclasses set `name`, `binary`, and implement :meth:`command` and :meth:`probe`.
    """

    name: ClassVar[str] = "service"
    binary: ClassVar[str] = ""
    apt_package: ClassVar[str] = ""
    #: Extra ports a subclass needs besides `port` (e.g. influxd's RPC bind address).
    extra_port_count: int = 0

    def __init__(
        self,
        *,
        workdir: str | Path | None = None,
        port: int | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = (
            Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"outpost-{self.name}-"))
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._fixed_port = port is not None
        self.port: int = port or 0
        self.extra_ports: list[int] = []
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.name}.log"
        #: Seconds the last successful start() took, until the service answered.
        self.startup_seconds: float | None = None

    # -- subclass interface

    def command(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        """Write config files for the current ports (called before each start)."""

    def probe(self) -> bool:
        """One quick check that the service answers its protocol."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- public API

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        if self.is_running():
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        exe = shutil.which(self.binary) or (self.binary if os.path.isabs(self.binary) else None)
        if exe is None or not os.path.exists(exe):
            hint = f" (apt-get install {self.apt_package})" if self.apt_package else ""
            raise ServiceError(f"{self.binary} not found on PATH{hint}")
        # A port chosen by free_port() may be taken by someone else before we bind it:
        # retry with fresh ports, but only while the ports are ours to choose.
        attempts = 1 if (self._fixed_port or self.startup_seconds is not None) else 4
        for attempt in range(attempts):
            if not self.port:
                self.port = free_port()
            while len(self.extra_ports) < self.extra_port_count:
                self.extra_ports.append(free_port())
            try:
                self._start_once()
                return self
            except ServiceError:
                if attempt + 1 < attempts and "already in use" in self.log_tail(20).lower():
                    self.port, self.extra_ports = 0, []
                    continue
                raise
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        self.write_config()
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(
                f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.command())}\n".encode()
            )
            log.flush()
            main_thread = threading.current_thread() is threading.main_thread()
            # PDEATHSIG fires when the *thread* that forked exits: only safe from the main thread.
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,  # Ctrl-C on the test run is handled by our teardown
                preexec_fn=_die_with_parent if main_thread else None,
            )
        with _running_lock:
            _running.add(self)
        deadline = t0 + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                self._reap()
                raise ServiceError(self._failure(f"exited with code {self.proc.returncode}"))
            if _owns_port(self.proc.pid, self.port) and self._safe_probe():
                break
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(
                    self._failure(f"did not answer within {self.start_timeout:.0f} s")
                )
            time.sleep(0.02)
        self.startup_seconds = time.monotonic() - t0
        self.after_start()

    def after_start(self) -> None:
        """Hook: runs once the service answers (e.g. create users)."""

    def _safe_probe(self) -> bool:
        try:
            return self.probe()
        except (OSError, ValueError):
            return False

    def _failure(self, what: str) -> str:
        return (
            f"{self.name} on port {self.port} {what}; last lines of {self.log_path}:\n"
            f"{self.log_tail(30)}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            data = self.log_path.read_bytes()[-16384:]
        except OSError:
            return "(no log)"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL: no clean shutdown (a broker loses what it had not saved yet)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()
        return self._reap()

    def _reap(self) -> int | None:
        with _running_lock:
            _running.discard(self)
        return self.proc.returncode if self.proc else None

    def restart(self, *, hard: bool = False) -> Self:
        """Stop (SIGKILL when `hard`) and start again on the same port and data directory."""
        self.kill() if hard else self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the temporary directory (unless it was given, or
        OUTPOST_KEEP_SERVICE_DIRS is set, for post-mortems)."""
        self.stop()
        if self._own_dir and not os.environ.get("OUTPOST_KEEP_SERVICE_DIRS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        if not self.is_running():
            try:
                self.start()
            except BaseException:
                self.close()  # the error message already carries the log tail
                raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {HOST}:{self.port} {state} {self.workdir}>"


# --- Mosquitto ----------------------------------------------------------------------------


def _mqtt_string(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def mqtt_connack_probe(port: int, timeout: float = 1.0) -> bool:
    """Send an MQTT 3.1.1 CONNECT and check for a CONNACK (any return code: a broker that
    refuses anonymous clients still answers). Raw socket: no paho thread per probe."""
    client_id = f"outpost-probe-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    var = _mqtt_string("MQTT") + bytes([4, 0x02]) + (10).to_bytes(2, "big")  # clean, keepalive 10
    payload = var + _mqtt_string(client_id)
    packet = bytes([0x10, len(payload)]) + payload  # < 128 bytes: one-byte length
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(packet)
        ack = s.recv(4)
        ok = len(ack) >= 2 and ack[0] == 0x20 and ack[1] == 0x02
        with contextlib.suppress(OSError):
            s.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean goodbye
        return ok


class Mosquitto(Service):
    """Mosquitto 2.x with persistence in its temp dir and limits sized for a gateway that
    acknowledges QoS 1 only after its InfluxDB/outbox commit (DESIGN.md §7, §10).

    `extra_config` lines are appended verbatim (password_file, acl_file, …). With `tls`
    (a dict with ``cafile``, ``certfile``, ``keyfile`` and optionally
    ``require_certificate``) a second listener on `tls_port` speaks MQTT over TLS.
    `per_listener_settings` stays false, so auth settings apply to both listeners.
    """

    name = "mosquitto"
    binary = "mosquitto"
    apt_package = "mosquitto"

    def __init__(
        self,
        *,
        allow_anonymous: bool = True,
        password_file: str | Path | None = None,
        acl_file: str | Path | None = None,
        tls: dict[str, Any] | None = None,
        extra_config: str | Iterable[str] = (),
        autosave_interval: int = 1,
        max_queued_messages: int = 100_000,
        max_inflight_messages: int = 10_000,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.allow_anonymous = allow_anonymous
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.extra_config = [extra_config] if isinstance(extra_config, str) else list(extra_config)
        self.autosave_interval = autosave_interval
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.config_path = self.workdir / "mosquitto.conf"
        self.data_dir = self.workdir / "data"
        self.extra_port_count = 1 if tls else 0

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    @property
    def tls_port(self) -> int:
        if not self.tls:
            raise ServiceError("Mosquitto started without tls=")
        return self.extra_ports[0]

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]

    def write_config(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        lines = [
            "# Generated by tests/services.py for one test broker.",
            f"listener {self.port} {HOST}",
            "per_listener_settings false",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            # Started as root, mosquitto drops to the `mosquitto` user and then cannot read
            # this mkdtemp (0700) directory, key or password files (DESIGN.md §10).
            # Ignored when not started as root.
            "user root",
            # Sessions and queued QoS 1 messages survive a restart (the at-least-once tests).
            "persistence true",
            f"persistence_location {self.data_dir}/",
            # Default 1800 s: a SIGKILLed broker would lose half an hour of acknowledged
            # messages. Tests save every second; the cost is one snapshot write per second.
            f"autosave_interval {self.autosave_interval}",
            # Defaults (1000 queued, 20 in flight) throttle a gateway that acknowledges only
            # after its batch is committed: it needs a whole batch (batch_size 5000) plus the
            # next one in flight, and an offline gateway's session must hold minutes of data.
            f"max_queued_messages {self.max_queued_messages}",
            "max_queued_bytes 0",
            f"max_inflight_messages {self.max_inflight_messages}",
            "set_tcp_nodelay true",  # latency measurements are not skewed by Nagle
            "log_dest stderr",  # → the log file (stdout/stderr are redirected there)
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        if self.tls:
            lines += [f"listener {self.tls_port} {HOST}", f"cafile {self.tls['cafile']}"]
            lines += [f"certfile {self.tls['certfile']}", f"keyfile {self.tls['keyfile']}"]
            if self.tls.get("require_certificate"):
                lines.append("require_certificate true")
        lines += self.extra_config
        self.config_path.write_text("\n".join(lines) + "\n")

    def probe(self) -> bool:
        return mqtt_connack_probe(self.port)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "mosquitto.db"

    def wait_for_save(self, timeout: float | None = None) -> None:
        """Wait until the broker has saved its database after this call began.

        Mosquitto handles messages and saves on one thread, so a save that ends after a
        publisher got its PUBACK holds that message: call this after the publish, then a
        SIGKILL loses nothing. Autosave comes every `autosave_interval` s, observed up to
        interval + 1 s later (its 1 s tick and a strict comparison)."""
        start = time.time()
        deadline = time.monotonic() + (timeout or self.autosave_interval + 5)
        while not (self.db_path.exists() and self.db_path.stat().st_mtime > start):
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not save {self.db_path} in time")
            time.sleep(0.02)

    @staticmethod
    def write_password_file(path: str | Path, users: dict[str, str]) -> Path:
        """Create a mosquitto password file (hashed, with `mosquitto_passwd`)."""
        path = Path(path)
        path.write_text("")
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)
        return path


# --- InfluxDB 1.x -------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """An InfluxQL double-quoted identifier (measurement, tag or field name)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(value: str) -> str:
    """An InfluxQL single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


class InfluxDB(Service):
    """influxd 1.x (Debian `influxdb`, 1.6 here) with a generated config: HTTP and the RPC
    bind address on free ports, data in the temp dir, background services off.

    With `auth_enabled`, an admin user (`username`/`password`) is created on first start;
    the helpers below then authenticate with HTTP Basic.
    """

    name = "influxd"
    binary = "influxd"
    apt_package = "influxdb"
    extra_port_count = 1  # the top-level bind-address (RPC used by backup/restore)

    def __init__(
        self,
        *,
        auth_enabled: bool = False,
        username: str = "admin",
        password: str = "admin-password",
        max_body_size: int = 25_000_000,
        access_log: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.auth_enabled = auth_enabled
        self.username, self.password = username, password
        self.max_body_size = max_body_size
        self.access_log = access_log
        self.config_path = self.workdir / "influxdb.conf"

    def command(self) -> list[str]:
        return [self.binary, "run", "-config", str(self.config_path)]

    def env(self) -> dict[str, str]:
        # INFLUXDB_* variables override the config file: none from the caller may leak in.
        return {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}

    def write_config(self) -> None:
        d = self.workdir
        self.config_path.write_text(
            f"""# Generated by tests/services.py for one test influxd.
# Debian's 1.6 spells it reporting-enabled (upstream 1.x: reporting-disabled); set both.
reporting-enabled = false
reporting-disabled = true
# Without this the RPC service binds 127.0.0.1:8088 and a second instance fails to start.
bind-address = "{HOST}:{self.extra_ports[0]}"

[meta]
  dir = "{d}/meta"
  logging-enabled = false

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  index-version = "inmem"
  query-log-enabled = false

[coordinator]
  log-queries-after = "0s"

# Background services a test never needs: each costs start-up time or CPU.
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "{HOST}:{self.port}"
  auth-enabled = {str(self.auth_enabled).lower()}
  log-enabled = {str(self.access_log).lower()}
  pprof-enabled = false
  max-body-size = {self.max_body_size}

[logging]
  level = "warn"
  suppress-logo = true
"""
        )

    def probe(self) -> bool:
        status, _, _ = http_request("GET", f"{self.url}/ping", timeout=1.0)
        return status == 204

    def after_start(self) -> None:
        if self.auth_enabled:
            # With auth on and no user yet, influxd accepts exactly this unauthenticated query.
            user, password = quote_ident(self.username), quote_string(self.password)
            self.query(f"CREATE USER {user} WITH PASSWORD {password} WITH ALL PRIVILEGES")

    # -- helpers

    def _headers(self) -> dict[str, str]:
        if not self.auth_enabled:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def query(self, q: str, db: str | None = None, *, epoch: str = "ns") -> dict[str, Any]:
        """Run InfluxQL through POST /query; raises InfluxError on any error in the answer."""
        form = {"q": q, "epoch": epoch} | ({"db": db} if db else {})
        headers = self._headers() | {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, body = http_request(
            "POST", f"{self.url}/query", urllib.parse.urlencode(form).encode(), headers
        )
        try:
            answer: dict[str, Any] = json.loads(body)
        except ValueError:
            raise InfluxError(f"{q!r}: HTTP {status}: {body[:500]!r}") from None
        errors = [answer.get("error")] + [r.get("error") for r in answer.get("results", [])]
        if status >= 300 or any(errors):
            raise InfluxError(f"{q!r}: HTTP {status}: {[e for e in errors if e] or body[:500]!r}")
        return answer

    def create_database(self, name: str) -> None:
        self.query(f"CREATE DATABASE {quote_ident(name)}")

    def drop_database(self, name: str) -> None:
        self.query(f"DROP DATABASE {quote_ident(name)}")

    def write(self, db: str, lines: str | bytes, *, precision: str = "ns") -> None:
        """Write line protocol through /write; raises InfluxError unless 204."""
        body = lines.encode() if isinstance(lines, str) else lines
        params = urllib.parse.urlencode({"db": db, "precision": precision})
        status, _, answer = http_request(
            "POST", f"{self.url}/write?{params}", body, self._headers()
        )
        if status != 204:
            raise InfluxError(f"write to {db}: HTTP {status}: {answer[:500]!r}")

    def points(self, db: str, measurement: str | None = None) -> list[dict[str, Any]]:
        """Every point as ``{"measurement", "time" (ns), "tags", "fields"}``, in time order
        per series. Caveat: /query's JSON writes the float 21.0 as ``21``, so a float field
        reads back as int here; use :meth:`field_types` to check types."""
        source = quote_ident(measurement) if measurement else "/.*/"
        answer = self.query(f"SELECT * FROM {source} GROUP BY *", db)
        rows: list[dict[str, Any]] = []
        for result in answer.get("results", []):
            for series in result.get("series", []):
                # GROUP BY * lists every tag key of the measurement; "" = not on this series
                tags = {k: v for k, v in (series.get("tags") or {}).items() if v != ""}
                cols = series["columns"]
                for values in series["values"]:
                    fields = {
                        c: v for c, v in zip(cols[1:], values[1:], strict=True) if v is not None
                    }
                    rows.append(
                        {
                            "measurement": series["name"],
                            "time": values[0],
                            "tags": tags,
                            "fields": fields,
                        }
                    )
        return rows

    def field_types(self, db: str, measurement: str) -> dict[str, str]:
        """Field name → "float" | "integer" | "boolean" | "string" (SHOW FIELD KEYS)."""
        answer = self.query(f"SHOW FIELD KEYS FROM {quote_ident(measurement)}", db)
        out: dict[str, str] = {}
        for result in answer.get("results", []):
            for series in result.get("series", []):
                out.update({k: t for k, t in series["values"]})
        return out

    def databases(self) -> list[str]:
        answer = self.query("SHOW DATABASES")
        series = answer["results"][0].get("series", [])
        return [v[0] for s in series for v in s.get("values", [])]

    def measurements(self, db: str) -> list[str]:
        answer = self.query("SHOW MEASUREMENTS", db)
        series = answer["results"][0].get("series", [])
        return [v[0] for s in series for v in s.get("values", [])]

    def count(self, db: str, measurement: str | None = None) -> int:
        """Points stored (0 while the database does not exist yet)."""
        return len(self._points_or_none(db, measurement))

    def wait_for_count(
        self, db: str, n: int, timeout: float = 10.0, measurement: str | None = None
    ) -> list[dict[str, Any]]:
        """Poll until at least `n` points are stored; return them. Raises TimeoutError
        with the count reached. Blocks: in an async test use :meth:`wait_for_count_async`,
        or a gateway running on the same event loop cannot make progress meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self._points_or_none(db, measurement)
            if len(rows) >= n:
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(rows)} of {n} points in {db!r} after {timeout} s")
            time.sleep(0.05)

    async def wait_for_count_async(
        self, db: str, n: int, timeout: float = 10.0, measurement: str | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`wait_for_count` that leaves the event loop running between polls."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await asyncio.to_thread(self._points_or_none, db, measurement)
            if len(rows) >= n:
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(rows)} of {n} points in {db!r} after {timeout} s")
            await asyncio.sleep(0.05)

    def _points_or_none(self, db: str, measurement: str | None) -> list[dict[str, Any]]:
        try:
            return self.points(db, measurement)
        except InfluxError as e:  # the writer has not created the database yet
            if "database not found" in str(e):
                return []
            raise


# --- VictoriaMetrics ----------------------------------------------------------------------


class VictoriaMetrics(Service):
    """VictoriaMetrics single node: accepts InfluxDB line protocol on /write and the 2.x
    API /api/v2/write; stores floats only, with millisecond timestamps. A field `value` of
    measurement `m` becomes the series `m_value`."""

    name = "victoria-metrics"
    binary = "victoria-metrics"
    apt_package = "victoria-metrics"

    def __init__(self, *, extra_args: Sequence[str] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self.extra_args = list(extra_args)
        self.data_dir = self.workdir / "data"

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr={HOST}:{self.port}",
            f"-storageDataPath={self.data_dir}",
            # Tests write fixed timestamps (2023…); the default retention (1 month) drops them.
            "-retentionPeriod=100y",
            # Queries otherwise hide the last 30 s and serve cached answers.
            "-search.latencyOffset=0s",
            "-search.disableCache",
            *self.extra_args,
        ]

    def probe(self) -> bool:
        status, _, body = http_request("GET", f"{self.url}/health", timeout=1.0)
        return status == 200 and body.strip() == b"OK"

    def flush(self) -> None:
        """Make just-written samples visible to queries and export."""
        status, _, body = http_request("GET", f"{self.url}/internal/force_flush")
        if status != 200:
            raise ServiceError(f"force_flush: HTTP {status}: {body[:300]!r}")

    def export(
        self, match: str = '{__name__=~".+"}', *, flush: bool = True
    ) -> list[dict[str, Any]]:
        """Series from /api/v1/export: ``{"metric": {labels}, "values": [...],
        "timestamps": [ms...]}`` each (flushes first, so fresh writes are included)."""
        if flush:
            self.flush()
        params = urllib.parse.urlencode({"match[]": match})
        status, _, body = http_request("GET", f"{self.url}/api/v1/export?{params}")
        if status != 200:
            raise ServiceError(f"export {match}: HTTP {status}: {body[:300]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def query(self, promql: str) -> dict[str, Any]:
        """Instant query (/api/v1/query); returns the `data` part."""
        params = urllib.parse.urlencode({"query": promql})
        status, _, body = http_request("GET", f"{self.url}/api/v1/query?{params}")
        answer: dict[str, Any] = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise ServiceError(f"query {promql}: HTTP {status}: {body[:300]!r}")
        return dict(answer["data"])

    def delete_series(self, match: str = '{__name__=~".+"}') -> None:
        params = urllib.parse.urlencode({"match[]": match})
        status, _, body = http_request(
            "POST", f"{self.url}/api/v1/admin/tsdb/delete_series?{params}"
        )
        if status not in (200, 204):
            raise ServiceError(f"delete_series {match}: HTTP {status}: {body[:300]!r}")
