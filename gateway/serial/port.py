"""The bridge's pyserial calls; each runs in the bridge's own threads (they block)."""

from __future__ import annotations

import contextlib

import serial  # type: ignore[import-untyped]  # no stubs installed (types-pyserial)

from gateway.serial.settings import SerialConfig


def open_serial(config: SerialConfig) -> serial.Serial:
    """Open the configured port, exclusively."""
    return serial.Serial(
        config.port,
        config.baud,
        timeout=config.read_timeout,
        write_timeout=2.0,
        exclusive=True,  # two bridges on one port would split its lines between them
    )


def read_available(port: serial.Serial) -> bytes:
    """Wait up to ``read_timeout`` for a byte, then take everything already buffered."""
    data: bytes = port.read(max(1, port.in_waiting))
    # A read that waited returns at the first byte; the rest of the line is usually
    # already buffered behind it. Taking it now halves the thread hops per line at low
    # rates (measured: benchmarks/serial.py, bridge CPU per line at 2,000 lines/s).
    waiting = port.in_waiting if data else 0
    if waiting:
        data += port.read(waiting)
    return data


def write_all(port: serial.Serial, payload: bytes) -> None:
    """Write one command line and wait until it has left."""
    port.write(payload)
    port.flush()


def close_quietly(port: serial.Serial) -> None:
    """Close a port that may already be gone (unplugged)."""
    with contextlib.suppress(Exception):
        port.close()
