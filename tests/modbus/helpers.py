"""Small helpers of the Modbus end-to-end tests: the gateway's API, its metrics, waiting."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def devices(api: str) -> dict[str, dict[str, Any]]:
    return {d["device"]: d for d in json.loads(get(f"{api}/api/v1/devices"))["devices"]}


def metric(api: str, name: str, **labels: str) -> float:
    """The value of one series in ``/metrics`` (0 when it is not there yet)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in get(f"{api}/metrics").decode().splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if match and match[1] == name:
            have = ",".join(sorted(match[2].split(",")))
            if have == wanted:
                return float(match[3])
    return 0.0


def wait_until(check: Callable[[], T | None], timeout: float = 15.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)
