"""The CLI's client of the running gateway's HTTP API (``outpost command``, ``status``…).

The gateway is found where the config says it listens (``http.listen``) and is
sent the bearer token it expects (``http.token_file``), so a verb run with the
gateway's own ``-c FILE`` reaches it. Every failure to talk to it becomes one
:class:`ApiError` whose text is meant for the user as it is.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from gateway.cli.common import command_name
from gateway.config.addresses import is_wildcard, split_listen
from gateway.config.schema import HttpConfig


class ApiError(Exception):
    """The gateway could not be asked, or refused; ``str()`` is the message for the user."""


@dataclass(frozen=True)
class Answer:
    """The gateway's answer: HTTP status, its reason phrase and the decoded JSON body."""

    status: int
    reason: str
    body: Any


def base_url(listen: str) -> str:
    """``http.listen`` (HOST:PORT) as the URL a client on this machine uses."""
    host, port = split_listen(listen)
    if is_wildcard(host):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class GatewayApi:
    """GET, POST and DELETE on the gateway's ``/api/v1`` with JSON bodies."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, http: HttpConfig, timeout: float = 10.0) -> GatewayApi:
        """The gateway the config describes, with the token it expects."""
        token = http.token.get_secret_value() if http.token is not None else None
        return cls(base_url(http.listen), token, timeout)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        """Any answer the gateway gives, refusals included; ApiError only when it cannot answer."""
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return Answer(resp.status, resp.reason, json.loads(resp.read() or b"null"))
        except urllib.error.HTTPError as exc:
            try:
                return Answer(exc.code, exc.reason, json.loads(exc.read() or b"null"))
            except ValueError:  # a proxy's or the server's plain-text error page
                return Answer(exc.code, exc.reason, {"error": exc.reason})
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(
                f"cannot reach the gateway at {self.base}: {reason} "
                f"(is `{command_name()} run` running with this config?)"
            ) from None

    def get(self, path: str) -> Any:
        """The JSON body of a successful GET; any HTTP error status is an ApiError."""
        answer = self.call("GET", path)
        if answer.status >= 300:
            raise ApiError(f"{self.base}{path}: HTTP {answer.status} {answer.reason}")
        return answer.body
