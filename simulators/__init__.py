"""Simulated devices: sensors (and, later, actuators) that only speak MQTT.

- ``SensorModel`` / ``MetricSpec`` (``model``): pure, seeded value generators.
- ``step`` / ``Greenhouse`` / ``GreenhouseParams`` (``greenhouse``): closed-loop physics.
- ``Actuator`` (``actuators``): a fan, heater or pump taking outpost commands.
- ``FaultPlan`` (``faults``): stuck, spikes, dropout, offline, ignore_commands.
- ``Scenario`` / ``load_scenario`` (``scenario``): devices, metrics or physics, faults (YAML).
- ``Simulation`` (``runner``): the paced loop behind ``outpost simulate``.
- ``publish_load`` / ``LoadStats`` (``load``): the benchmark publisher.
- ``add_parser`` (``cli``): the ``simulate`` verb for the ``outpost`` CLI.
"""

from simulators.actuators import Actuator
from simulators.cli import add_parser
from simulators.faults import FaultPlan
from simulators.greenhouse import Greenhouse, GreenhouseParams, step
from simulators.link import Broker
from simulators.load import LoadStats, publish_load
from simulators.model import MetricSpec, Model, SensorModel
from simulators.payloads import Style, encode_sample
from simulators.runner import SimOptions, SimStats, Simulation
from simulators.scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "Actuator",
    "Broker",
    "FaultPlan",
    "Greenhouse",
    "GreenhouseParams",
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
    "step",
]
