"""Sparkplug B (3.0.0): Outpost as a host application of edge nodes.

| module | what |
|---|---|
| ``topic.py`` | the topic namespace: parse and build ``spBv1.0/<group>/<type>/<node>[/<device>]`` |
| ``payload.py`` | protobuf payloads: parse, read a metric by its birth's datatype, encode |
| ``session.py`` | what the host remembers of a node: its session and birth certificates |
| ``host.py`` | ``SparkplugHost``, the state machine: messages in, readings and actions out |

The convention (``format: sparkplug``, ``convention: sparkplug``) is
:mod:`devices.conventions.sparkplug`; the gateway runs the state machine in
:mod:`gateway.devices_runtime.sparkplug`. User documentation: docs/devices-sparkplug.md.
"""
