"""How one of the gateway's connections is doing: its state and the last thing that failed.

The broker connections (:mod:`gateway.mqtt.watch`) and the InfluxDB writer each keep
one :class:`Health`; the status read model shows them side by side, so a broker that
refuses the gateway is never reported as an InfluxDB problem, and the reason is there
without reading the log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from rules import rfc3339

State = Literal["up", "down", "unknown"]


@dataclass(frozen=True, slots=True)
class Health:
    state: State  # "unknown": no attempt has finished yet
    target: str  # where the connection goes (host:port, or a URL without credentials)
    since_ns: int | None = None  # when the current state began (wall clock)
    last_error: str | None = None  # the last failure's reason, kept after a recovery
    last_error_ns: int | None = None
    failures: int = 0  # failed attempts since the last success

    def failed(self, reason: str, now_ns: int) -> Health:
        """An attempt failed."""
        return replace(self.down(reason, now_ns), failures=self.failures + 1)

    def down(self, reason: str, now_ns: int) -> Health:
        """The connection went down (not an attempt of ours: nothing is counted)."""
        since = self.since_ns if self.state == "down" else now_ns
        return replace(self, state="down", since_ns=since, last_error=reason,
                       last_error_ns=now_ns)

    def succeeded(self, now_ns: int) -> Health:
        if self.state == "up":
            return self  # the usual case, once per InfluxDB batch: nothing changes
        return replace(self, state="up", since_ns=now_ns, failures=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "target": self.target,
            "since": rfc3339(self.since_ns),
            "last_error": self.last_error,
            "last_error_at": rfc3339(self.last_error_ns),
            "failures": self.failures,
        }
