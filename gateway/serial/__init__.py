"""Serial sensors in the gateway: the bridge (port ⇄ MQTT), its settings and port calls."""
