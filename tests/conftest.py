"""Fixtures that run the real services (tests/services.py) for end-to-end tests.

A service that cannot start makes the test ERROR with the service's log tail: nothing is
skipped because a service is missing (DESIGN.md §8).

| fixture              | scope    | gives                                                     |
|----------------------|----------|-----------------------------------------------------------|
| `mosquitto`          | function | a fresh broker (`.port`, `.restart()`, `.kill()` are yours) |
| `shared_mosquitto`   | session  | one broker for tests that only publish and subscribe:     |
|                      |          | unique topics and client ids, and never stop it           |
| `influxdb`           | session  | one influxd; never stop it (use `fresh_influxdb`)         |
| `influx_db`          | function | name of a new empty database on `influxdb`, dropped after |
| `influx_db_name`     | function | a unique database name NOT created yet (for "the writer   |
|                      |          | creates the database" tests), dropped after               |
| `fresh_influxdb`     | function | an influxd of your own, to stop/kill/restart              |
| `victoria_metrics`   | session  | one VictoriaMetrics; use unique measurement names or tags |
| `fault_proxy`        | function | a FaultProxy in front of `influxdb` (`.url` for the gateway) |
| `free_port`          | function | a free 127.0.0.1 port number                              |
| `tmp_state_dir`      | function | an empty directory for a gateway's `state_dir`            |
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faultproxy import FaultProxy
from tests.services import InfluxDB, Mosquitto, VictoriaMetrics
from tests.services import free_port as _free_port


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture
def tmp_state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def shared_mosquitto() -> Iterator[Mosquitto]:
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxDB]:
    with InfluxDB() as server:
        yield server


@pytest.fixture
def influx_db(influxdb: InfluxDB) -> Iterator[str]:
    if not influxdb.is_running():  # a test stopped the shared server: heal, do not cascade
        influxdb.start()
    name = f"test_{uuid.uuid4().hex[:12]}"
    influxdb.create_database(name)
    yield name
    if influxdb.is_running():
        influxdb.drop_database(name)


@pytest.fixture
def influx_db_name(influxdb: InfluxDB) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    if influxdb.is_running():
        influxdb.drop_database(name)  # no error when it was never created


@pytest.fixture
def fresh_influxdb() -> Iterator[InfluxDB]:
    with InfluxDB() as server:
        yield server


@pytest.fixture(scope="session")
def victoria_metrics() -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics() as server:
        yield server


@pytest.fixture
def fault_proxy(influxdb: InfluxDB) -> Iterator[FaultProxy]:
    with FaultProxy(influxdb.url, record_bodies=True) as proxy:
        yield proxy
