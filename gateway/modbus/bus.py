"""One Modbus link (an RS-485 port, a TCP host:port) shared by its devices: one request at a time.

RS-485 is half duplex with one master: a second request sent before the first
is answered garbles both. So every device on a port goes through one
:class:`Bus`, and talks on it only during its :meth:`Bus.turn` (one poll of one
device, or one write and its read-back); turns are fair (first come, first
served), so a device that times out delays each other device by at most one
of its turns. A TCP
host:port (a device, or a TCP-to-RTU gateway in front of an RS-485 line) is a
bus too: one connection, one request at a time, which is what small devices
and gateways handle.

**Timeouts and retries** are the bus's, not pymodbus's: the client is built with
``retries=0`` and each attempt is bounded by the calling device's ``timeout``
(``asyncio.timeout``), so every timeout and every retry is counted, per device.

**Connecting** happens on demand. A failed connect is not tried again before a
backoff delay (:class:`gateway.retry.Backoff`, 1 s doubling to 10 s): until then
requests fail at once with :class:`Unreachable`, so a dead TCP host costs its
devices' polls nothing, and it is found again within 10 s of coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from gateway.config.schema import ModbusDeviceConfig, tcp_address
from gateway.retry import Backoff

log = logging.getLogger("outpost.modbus")

# pymodbus logs every timeout and failed connect itself, at ERROR, once per request: the
# bus counts them and the poller logs them once per device and interval instead.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

Call = Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]


class Unreachable(Exception):
    """No answer: ``timeout`` after every retry, or ``no_connection``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Bus:
    """The lock and the client of one link; see the module docstring."""

    def __init__(
        self, name: str, client: ModbusBaseClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.client = client
        self.counters: Counter[str] = Counter()  # connects, connect_failures, disconnects
        self._lock = asyncio.Lock()
        self._backoff = Backoff(base=1.0, cap=10.0)
        self._retry_at = float("-inf")
        self._clock = clock

    @property
    def connected(self) -> bool:
        return bool(self.client.connected)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The link to oneself: the requests of one poll, or a write and its read-back."""
        async with self._lock:
            yield

    async def request(
        self, call: Call, *, timeout: float, retries: int, counters: Counter[str]
    ) -> ModbusPDU:
        """One request, during the caller's :meth:`turn`: the answer (an exception response
        too), or :class:`Unreachable`. ``counters`` (the device's) gets ``timeouts`` and
        ``retries``."""
        if not self._lock.locked():
            raise RuntimeError("Bus.request outside Bus.turn")
        await self._connect(timeout)
        for attempt in range(retries + 1):
            if attempt:
                counters["retries"] += 1
            try:
                async with asyncio.timeout(timeout):
                    return await call(self.client)
            except (TimeoutError, ModbusException) as exc:
                if isinstance(exc, ConnectionException):
                    self._lost(exc)
                    raise Unreachable("no_connection", f"{self.name}: {exc}") from None
                counters["timeouts"] += 1
        tries = f" ({retries + 1} attempts)" if retries else ""
        raise Unreachable("timeout", f"no answer within {timeout:g}s{tries}")

    async def _connect(self, timeout: float) -> None:
        if self.client.connected:
            return
        if self._clock() < self._retry_at:
            raise Unreachable("no_connection", f"{self.name}: not connected (retrying)")
        ok = False
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(max(timeout, 1.0)):
                ok = await self.client.connect()
        if not ok:
            self.counters["connect_failures"] += 1
            self._retry_at = self._clock() + self._backoff.next()
            raise Unreachable("no_connection", f"{self.name}: cannot connect")
        self._backoff.reset()
        self.counters["connects"] += 1
        log.info("modbus %s connected", self.name)

    def _lost(self, exc: Exception) -> None:
        self.counters["disconnects"] += 1
        log.info("modbus %s: connection lost (%s)", self.name, exc)
        self.client.close()

    def close(self) -> None:
        self.client.close()


def bus_for(entries: list[ModbusDeviceConfig]) -> Bus:
    """The bus of the devices that share one link (``entries``, all on it)."""
    first = entries[0]
    # pymodbus's own wait is the longest of its devices'; each request is cut at its
    # device's own timeout by Bus.request.
    timeout = max(e.timeout for e in entries) + 1.0
    options: dict[str, Any] = {"timeout": timeout, "retries": 0, "reconnect_delay": 0}
    client: ModbusBaseClient
    if first.tcp is not None:
        host, port = tcp_address(first.tcp)
        client = AsyncModbusTcpClient(host, port=port, **options)
    else:
        assert first.rtu is not None
        rtu = first.rtu
        client = AsyncModbusSerialClient(
            rtu.port, baudrate=rtu.baudrate, parity=rtu.parity, stopbits=rtu.stopbits,
            bytesize=8, **options,
        )  # fmt: skip
    return Bus(first.bus, client)
