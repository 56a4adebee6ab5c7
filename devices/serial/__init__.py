"""Serial sensors: framings (bytes → frames); the bridge (port ⇄ MQTT) is ``gateway.serial``."""
