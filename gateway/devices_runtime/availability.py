"""Availability topics of the conventions in use: which filters, and what a message says.

Each convention in use — an input's ``format:``, a ``devices:`` entry's
``convention:``, ``outpost`` for ``serial:`` bridges and for inputs under
``sensors/`` — adds its LWT/availability filters (``zigbee2mqtt/+/availability``,
``tele/+/LWT``, ``devices/+/status`` …). :class:`AvailabilityRoutes` holds them,
routes a topic to the conventions that listen on it and asks each, in order, what
the message says.
"""

from __future__ import annotations

import logging

import devices.conventions as conventions
from devices.conventions.base import Availability, Convention
from devices.decoding import Message
from devices.model import InvalidReading
from gateway.config import LoadedConfig
from gateway.logsetup import printable
from gateway.topics import TopicRouter, TopicTemplate

log = logging.getLogger("outpost.devices")


class AvailabilityRoutes:
    """The (filter, convention) pairs of a config, and the router over them."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.routes = _routes(loaded)
        # The last topic level of every filter: a cheap first test per message.
        self.levels = {f.rsplit("/", 1)[-1] for f, _ in self.routes}
        groups: dict[str, list[Convention]] = {}
        for topic_filter, convention in self.routes:
            groups.setdefault(topic_filter, []).append(convention)
        self.router: TopicRouter[list[Convention]] = TopicRouter(
            [(TopicTemplate(f), convs) for f, convs in groups.items()], cache_size=10_000
        )
        self.errors = 0  # messages a convention refused (a bad device id, non-UTF-8)

    def filters(self) -> list[str]:
        """Every availability topic filter, once each, in config order."""
        return list(dict.fromkeys(f for f, _ in self.routes))

    def read(self, topic: str, payload: bytes, now: int) -> tuple[Availability, str] | None:
        """The first status a listening convention reads in the message, and its name."""
        route = self.router.route(topic)
        if route is None:
            return None
        message = Message(topic, payload, {}, now)
        for convention in route[0]:
            try:
                status = convention.availability(message)
            except InvalidReading as exc:  # a bad device id, a non-UTF-8 payload
                self.errors += 1
                log.debug("availability %s: %s", printable(topic, 120), printable(exc))
                continue
            if status is not None:
                return status, convention.name
        return None


def _routes(loaded: LoadedConfig) -> list[tuple[str, Convention]]:
    """(filter, convention) for every availability topic of the conventions in use."""
    config = loaded.config
    known = set(conventions.names())
    used: list[Convention] = []
    with_input: set[str] = set()
    for spec in config.inputs:
        if spec.format in known:
            used.append(conventions.create(spec.format, spec.model_dump()))
            with_input.add(spec.format)
    wanted = {d.convention for d in config.devices.values()}
    if config.serial or any(
        s.format not in known and s.topic.startswith("sensors/") for s in config.inputs
    ):
        wanted.add("outpost")  # bridges and simulators announce devices/{id}/status
    for name in sorted(wanted - with_input):
        if name in known:  # an unknown one is the config check's to report
            used.append(conventions.create(name))
    routes: list[tuple[str, Convention]] = []
    seen: set[tuple[str, str]] = set()
    for convention in used:
        for topic_filter in convention.availability_subscriptions():
            if (topic_filter, convention.name) not in seen:
                seen.add((topic_filter, convention.name))
                routes.append((topic_filter, convention))
    return routes
