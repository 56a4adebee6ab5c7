"""Simulated devices: sensors (and, later, actuators) that only speak MQTT.

- ``SensorModel`` / ``MetricSpec`` (``model``): pure, seeded value generators.
- ``Scenario`` / ``load_scenario`` (``scenario``): which devices, which metrics (YAML).
- ``Simulation`` (``runner``): the paced loop behind ``outpost simulate``.
- ``publish_load`` / ``LoadStats`` (``load``): the benchmark publisher.
- ``add_parser`` (``cli``): the ``simulate`` verb for the ``outpost`` CLI.
"""

from simulators.cli import add_parser
from simulators.link import Broker
from simulators.load import LoadStats, publish_load
from simulators.model import MetricSpec, Model, SensorModel
from simulators.payloads import Style, encode_sample
from simulators.runner import SimOptions, SimStats, Simulation
from simulators.scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "Broker",
    "LoadStats",
    "MetricSpec",
    "Model",
    "Scenario",
    "ScenarioError",
    "SensorModel",
    "SimOptions",
    "SimStats",
    "Simulation",
    "Style",
    "add_parser",
    "encode_sample",
    "load_scenario",
    "publish_load",
]
