"""Notifiers: alert events to people (webhooks, the log), never blocking the readings.

Each notifier named under ``notify:`` has its own bounded queue (1,000 events;
when full the oldest waiting event is dropped and counted) and its own worker,
so a slow or dead receiver delays nothing but its own notifications. A webhook
POSTs (or PUTs) a body built from a template — the alert event as JSON by
default, or a string / mapping whose strings use ``{rule}``, ``{device}``,
``{state}``, ``{severity}``, ``{message}``, ``{value}``, ``{at}``,
``{labels[name]}`` — so ntfy, Slack, Discord or Gotify work with a few lines of
config. Failures retry with capped exponential backoff; every outcome (sent,
failed, dropped, silenced) is journaled and counted. Webhook URLs often carry
keys, so they are never logged: a notifier is named by its config key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp

from gateway.actions.sentences import alert_sentence
from gateway.actions.silences import Silences
from gateway.config.schema import NotifierConfig
from gateway.journal import Journal
from gateway.logsetup import printable
from gateway.metrics import Metrics
from gateway.retry import Backoff

log = logging.getLogger("outpost.notify")

QUEUE_SIZE = 1000
RETRY = Backoff(base=1.0, cap=60.0)  # 0.5-1 s before the first retry, doubling to 60 s


class NotifyError(Exception):
    pass


class Notifier(Protocol):
    """Delivers one alert event; raises :class:`NotifyError` when it could not."""

    name: str

    async def send(self, event: Mapping[str, Any]) -> None: ...

    async def close(self) -> None: ...


class _SafeDict(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: Any, event: Mapping[str, Any]) -> Any:
    """Fill ``{field}`` placeholders in every string of ``template`` (never raises)."""
    if isinstance(template, str):
        fields = _SafeDict({k: ("" if v is None else v) for k, v in event.items()})
        try:
            return template.format_map(fields)
        except (ValueError, KeyError, IndexError, AttributeError, TypeError):
            return template
    if isinstance(template, Mapping):
        return {k: render(v, event) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, event) for v in template]
    return template


class WebhookNotifier:
    def __init__(self, name: str, cfg: NotifierConfig) -> None:
        assert cfg.webhook is not None
        self.name = name
        self._url = cfg.webhook.get_secret_value()
        self._cfg = cfg
        self._session: aiohttp.ClientSession | None = None

    async def send(self, event: Mapping[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._cfg.timeout)
            )
        headers = {k: str(render(v, event)) for k, v in self._cfg.headers.items()}
        if self._cfg.body is None:
            data: bytes = json.dumps(dict(event), ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(self._cfg.body, str):
            data = str(render(self._cfg.body, event)).encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            data = json.dumps(render(self._cfg.body, event), ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            async with self._session.request(
                self._cfg.method, self._url, data=data, headers=headers
            ) as resp:
                if resp.status >= 300:
                    raise NotifyError(f"HTTP {resp.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # The exception text can hold the URL, and with it a key: keep only its type.
            raise NotifyError(type(exc).__name__) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class LogNotifier:
    def __init__(self, name: str, cfg: NotifierConfig) -> None:
        self.name = name
        self._template = cfg.body if isinstance(cfg.body, str) else None

    async def send(self, event: Mapping[str, Any]) -> None:
        text = alert_sentence(event) if self._template is None else render(self._template, event)
        log.warning("%s", printable(text, 2000))

    async def close(self) -> None:
        return None


NOTIFIERS: dict[str, Callable[[str, NotifierConfig], Notifier]] = {
    "webhook": WebhookNotifier,
    "log": LogNotifier,
}
"""Notifier kinds by the ``type:`` of a ``notify:`` entry; adding one is a class and a line."""


def make_notifier(name: str, cfg: NotifierConfig) -> Notifier:
    return NOTIFIERS[cfg.type](name, cfg)


class _Channel:
    def __init__(self, notifier: Notifier, cfg: NotifierConfig) -> None:
        self.notifier = notifier
        self.cfg = cfg
        self.queue: deque[dict[str, Any]] = deque()
        self.wake = asyncio.Event()


class Notifications:
    def __init__(
        self,
        configs: Mapping[str, NotifierConfig],
        *,
        silences: Silences,
        journal: Journal,
        metrics: Metrics,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._channels = [_Channel(make_notifier(name, cfg), cfg) for name, cfg in configs.items()]
        self._silences = silences
        self._journal = journal
        self._metrics = metrics
        self._clock = clock

    def submit(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` for every notifier that wants it (never waits)."""
        rule, device = str(event.get("rule")), str(event.get("device"))
        wanted = [
            c
            for c in self._channels
            if event.get("state") in c.cfg.states
            and (not c.cfg.severities or event.get("severity") in c.cfg.severities)
        ]
        if not wanted:
            return
        silence = self._silences.silencing(rule, device, self._clock())
        for channel in wanted:
            name = channel.notifier.name
            if silence is not None:
                self._outcome(name, event, "silenced", silence=silence.id)
                continue
            if len(channel.queue) >= QUEUE_SIZE:
                dropped = channel.queue.popleft()
                self._outcome(name, dropped, "dropped", reason="queue full")
            channel.queue.append(dict(event))
            channel.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        workers = [asyncio.create_task(self._work(c, stop)) for c in self._channels]
        try:
            await stop.wait()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for channel in self._channels:
                await channel.notifier.close()

    async def _work(self, channel: _Channel, stop: asyncio.Event) -> None:
        name = channel.notifier.name
        while not stop.is_set():
            if not channel.queue:
                channel.wake.clear()
                await channel.wake.wait()
                continue
            event = channel.queue.popleft()
            attempt = 0
            while True:
                started = time.perf_counter()
                try:
                    await channel.notifier.send(event)
                except NotifyError as exc:
                    attempt += 1
                    if attempt > channel.cfg.retries:
                        self._outcome(name, event, "failed", error=str(exc), attempts=attempt)
                        log.error(
                            "notifier %s: giving up on %s/%s after %d attempts (%s)",
                            name,
                            event.get("rule"),
                            printable(event.get("device") or "", 120),
                            attempt,
                            printable(exc),
                        )
                        break
                    await asyncio.sleep(RETRY.delay(attempt - 1))
                    continue
                self._metrics.notify_seconds.observe(time.perf_counter() - started)
                self._outcome(name, event, "sent", attempts=attempt + 1)
                break

    def _outcome(self, notifier: str, event: Mapping[str, Any], outcome: str, **extra: Any) -> None:
        self._metrics.notifications.labels(notifier, outcome).inc()
        self._journal.append(
            "notification",
            {
                "notifier": notifier,
                "outcome": outcome,
                "rule": event.get("rule"),
                "device": event.get("device"),
                "state": event.get("state"),
                **extra,
            },
            rule=str(event.get("rule")),
            device=str(event.get("device")),
            trace_id=event.get("trace_id") or None,
        )
