"""Devices in the running gateway: the registry, availability topics, serial bridges, metrics.

One :class:`DevicesRuntime` per gateway, built from the loaded config before
anything connects (a bad ``serial:`` entry or TLS file fails the start).
Lifecycle::

    devices = DevicesRuntime(loaded, metrics)          # registry, conventions, bridges
    pipeline.add_observer(devices.observe)             # every reading, on the event loop
    link.subscribe(devices.availability_filters(), devices.on_message)   # LWT/availability
    task = asyncio.create_task(devices.run(stop))      # serial bridges until ``stop`` is set
    devices.snapshot()                                 # /api/v1/devices, the dashboard

(Without the gateway's low-volume ``MqttLink``, the ingest source can carry
availability too: ``MqttSource(cfg.mqtt, subs + devices.subscriptions(), metrics)``
started with ``devices.intercept(pipeline.on_message)``.)

| module | what |
|---|---|
| ``runtime.py`` | :class:`DevicesRuntime`: readings and availability into the registry |
| ``availability.py`` | the availability filters of the conventions in use, and reading them |
| ``bridges.py`` | the ``serial:`` bridges: config warnings, running and supervising them |
| ``collector.py`` | the Prometheus families, computed at scrape time |
| ``snapshot.py`` | the JSON device list (``/api/v1/devices``) |
"""

from gateway.devices_runtime.runtime import DevicesRuntime

__all__ = ["DevicesRuntime"]
