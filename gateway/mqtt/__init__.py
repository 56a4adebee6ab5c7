"""MQTT clients of the gateway: the ingest source (its own MQTT 5 client on asyncio,
acknowledgements once readings are safe) and the link for commands and alerts (paho)."""
