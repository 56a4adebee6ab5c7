"""The device list as JSON: ``/api/v1/devices`` and the dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devices.presence import DeviceRegistry
from rules import rfc3339


def device_list(
    registry: DeviceRegistry,
    now: int,
    *,
    expected: Mapping[str, str],
    serial_ports: Mapping[str, str],
    modbus: Mapping[str, str] | None = None,
    profile_units: Mapping[str, dict[str, str]],
) -> list[dict[str, Any]]:
    """Every device, sorted by id: those seen, then those ``expected`` (device → convention)
    but never seen, with ``online: false`` and ``online_reason: "never_seen"``."""
    out: dict[str, dict[str, Any]] = {}
    for info in list(registry.devices.values()):
        status = registry.status(info.device, now)
        units = profile_units.get(info.device, {})
        out[info.device] = {
            "device": info.device,
            "convention": info.convention,
            "online": status.online,
            "online_reason": status.reason,
            "last_seen": rfc3339(info.last_seen_ns) if info.messages else None,
            "first_seen": rfc3339(info.first_seen_ns),
            "reporting_interval_s": (
                round(info.interval_s, 3) if info.interval_s is not None else None
            ),
            "metrics": {
                name: {
                    "value": m.last_value,
                    "unit": m.unit or units.get(name, ""),
                    "ts": rfc3339(m.last_ts),
                }
                for name, m in sorted(list(info.metrics.items()))
            },
        }
    for device, convention in expected.items():
        if device not in out:
            out[device] = {
                "device": device, "convention": convention, "online": False,
                "online_reason": "never_seen", "last_seen": None, "first_seen": None,
                "reporting_interval_s": None, "metrics": {},
            }  # fmt: skip
    for device, port in serial_ports.items():
        out[device]["serial_port"] = port
    for device, link in (modbus or {}).items():
        out[device]["modbus"] = link  # "rtu /dev/ttyUSB0 unit 3", "tcp 10.0.0.5:502 unit 1"
    return [out[d] for d in sorted(out)]
