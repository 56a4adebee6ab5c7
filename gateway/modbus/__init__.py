"""Modbus RTU and TCP devices, polled by the gateway itself (pymodbus 3).

| module | what |
|---|---|
| ``bus.py`` | one link (RS-485 port, TCP host:port): its client, its lock, timeouts and retries |
| ``poller.py`` | one device: reads on schedule, readings, online/offline, exception responses |
| ``commands.py`` | writable registers as commands: policy entries, write and read back |
| ``collector.py`` | the Prometheus families, read at scrape time |
| ``runtime.py`` | :class:`ModbusRuntime`: every ``modbus:`` device of the config |

The register maps, their decoding and the profiles are pure and live in
:mod:`devices.modbus`.
"""
