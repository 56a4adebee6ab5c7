"""Built-in payload formats: ``value``, ``json`` and ``influx`` (line protocol).

Each module registers itself in :mod:`devices.formats.registry` when imported.
"""

from devices.formats import influx_lines, json_object, registry, value

__all__ = ["influx_lines", "json_object", "registry", "value"]
