"""Configuration: ``outpost.yaml`` schema and loader (DESIGN.md §4)."""

from gateway.config.loader import LoadedConfig, find_config, load_config, parse_config
from gateway.config.schema import Config, InfluxConfig, InputConfig, MqttConfig

__all__ = [
    "Config",
    "InfluxConfig",
    "InputConfig",
    "LoadedConfig",
    "MqttConfig",
    "find_config",
    "load_config",
    "parse_config",
]
