"""Serial sensors: framings (bytes → frames) and the bridge (port ⇄ MQTT)."""
