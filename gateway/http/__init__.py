"""The gateway's HTTP side: API, /metrics, health (and the dashboard)."""
