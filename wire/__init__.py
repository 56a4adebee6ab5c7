"""Wire schemas that both the gateway and the simulators speak, generated from their sources.

A floor of its own below every other package: it imports nothing of ours, so
``devices/`` (which decodes Sparkplug B payloads), ``gateway/`` and ``simulators/``
(whose edge-node simulator encodes them and otherwise speaks only MQTT) may all use it.

| module | what |
|---|---|
| ``sparkplug_b.proto`` | the Sparkplug B payload schema (origin and licence in ``README.md``) |
| ``sparkplug_b_pb2.py`` | generated from it by ``protoc``: do not edit (``README.md``) |
"""
