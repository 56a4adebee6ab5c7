"""Built-in payload formats: ``value``, ``json`` and ``influx`` (line protocol)."""

from gateway.decoders.formats import influx_lines, json_object, value  # noqa: F401
