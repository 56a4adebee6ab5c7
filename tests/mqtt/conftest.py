"""Fixtures of the ingest connection's tests: the locked-down broker of tests/security
(TLS with client certificates, a password file, the shipped ACL), and a source run in
the test's own event loop.

| fixture / helper | gives                                                               |
|------------------|---------------------------------------------------------------------|
| `pki`, `passwords`, `secure_broker` | as in tests/security/conftest.py                 |
| `running(cfg)`   | an :class:`MqttSource` started on the loop, with what it delivered   |
| `until(check)`   | waits (on the loop) until ``check()`` is true                        |
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from gateway.config.schema import MqttConfig
from gateway.metrics import Metrics
from gateway.mqtt.subscriber import MqttSource
from tests.security.conftest import passwords, pki, secure_broker  # noqa: F401  (fixtures)

Message = tuple[str, bytes, Any]


def mqtt_config(port: int, **extra: Any) -> MqttConfig:
    return MqttConfig.model_validate(
        {"host": "127.0.0.1", "port": port, "client_id": f"rx-{uuid.uuid4().hex[:8]}", **extra}
    )


@contextlib.asynccontextmanager
async def running(
    cfg: MqttConfig,
    subscriptions: Iterable[tuple[str, int]] = (("sensors/#", 1),),
    metrics: Metrics | None = None,
    **options: Any,
) -> AsyncIterator[tuple[MqttSource, list[Message]]]:
    """A started source and the list its messages are appended to, as they arrive."""
    got: list[Message] = []
    source = MqttSource(cfg, list(subscriptions), metrics or Metrics(), **options)
    source.start(lambda topic, payload, token: got.append((topic, payload, token)))
    try:
        yield source, got
    finally:
        await asyncio.to_thread(source.stop)


async def until(check: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)
