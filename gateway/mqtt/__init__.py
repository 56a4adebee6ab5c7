"""MQTT clients of the gateway: the ingest subscriber (paho, manual acks)."""
