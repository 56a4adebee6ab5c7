"""The real ``outpost run`` polling pymodbus's own server (a separate process) serving the
shipped profiles: readings into the real influxd, units in the device list, commands
written and read back, dead devices, exception responses."""

from __future__ import annotations

import itertools
import subprocess
import sys
import uuid

import yaml

from tests.gateway.harness import GatewayProcess, gateway_config, write_config
from tests.modbus.helpers import devices, metric, wait_until

XY = "xy_md02"


def start_gateway(tmp_path, mosquitto, influxdb, db, modbus, **extra):
    token = tmp_path / "api-token"  # commands through the API need a token
    token.write_text(uuid.uuid4().hex)
    token.chmod(0o600)
    config = gateway_config(mosquitto.port, influxdb.url, db, modbus=modbus,
                            http={"token_file": str(token)}, **extra)  # fmt: skip
    path = write_config(tmp_path / "outpost.yaml", config)
    return GatewayProcess(path), f"http://{config['http']['listen']}", path


def values(influxdb, db, measurement, device):
    return [(r["time"], r["fields"]["value"]) for r in influxdb.points(db, measurement)
            if r["tags"].get("device") == device]  # fmt: skip


def test_profiles_readings_reach_influxdb_with_units(
    tmp_path, mosquitto, influxdb, influx_db, modbus_tcp
):
    sim = modbus_tcp(
        "--unit", f"1={XY}", "--unit", "2=sdm120",
        "--values", '{"1": {"temperature": -12.5, "humidity": 40.3}, '
        '"2": {"voltage": 230.4, "power": -120.5, "frequency": 50.0, "total_energy": 1234.5}}',
    )  # fmt: skip
    gateway, api, _ = start_gateway(tmp_path, mosquitto, influxdb, influx_db, [
        {"device": "climate", "tcp": sim.address, "unit_id": 1, "profile": XY, "interval": "500ms"},
        {"device": "meter", "tcp": sim.address, "unit_id": 2, "profile": "sdm120",
         "interval": "1s"},
    ])  # fmt: skip
    with gateway:
        wait_until(lambda: values(influxdb, influx_db, "total_energy", "meter"), what="energy")
        wait_until(lambda: values(influxdb, influx_db, "humidity", "climate"), what="humidity")
        listed = wait_until(
            lambda: (d := devices(api)) and d["meter"]["metrics"] and d["climate"]["metrics"] and d
        )
        requests = metric(api, "outpost_modbus_requests_total", device="meter", outcome="answers")
    assert values(influxdb, influx_db, "temperature", "climate")[0][1] == -12.5
    assert values(influxdb, influx_db, "humidity", "climate")[0][1] == 40.3
    assert values(influxdb, influx_db, "voltage", "meter")[0][1] == 230.4
    assert values(influxdb, influx_db, "power", "meter")[0][1] == -120.5
    assert values(influxdb, influx_db, "total_energy", "meter")[0][1] == 1234.5
    climate, meter = listed["climate"], listed["meter"]
    assert (climate["convention"], climate["online"]) == ("modbus", True)
    assert climate["metrics"]["temperature"] == {**climate["metrics"]["temperature"],
                                                 "value": -12.5, "unit": "°C"}  # fmt: skip
    assert climate["metrics"]["humidity"]["unit"] == "%"
    assert meter["metrics"]["voltage"]["unit"] == "V"
    assert meter["metrics"]["total_energy"]["unit"] == "kWh"
    assert meter["modbus"] == f"tcp {sim.address} unit 2"
    assert requests >= 10  # ten requests a poll: the SDM120's map in as few reads as it allows


def command(config_path, device: str, *settings: str) -> subprocess.CompletedProcess[str]:
    """``outpost command DEVICE KEY=VALUE…``, as a person types it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "command", "-c", str(config_path), device, *settings],
        capture_output=True, text=True, timeout=30, cwd=config_path.parent,
    )  # fmt: skip


def holding(sim, unit: int, address: int) -> int:
    """One holding register of the simulator, read by a client of the test's own."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=2)
    try:
        assert client.connect()
        return int(client.read_holding_registers(address, count=1, device_id=unit).registers[0])
    finally:
        client.close()


def journal(api: str, device: str) -> list[dict]:
    from tests.modbus.helpers import get

    recent = yaml.safe_load(get(f"{api}/api/v1/commands?limit=20"))["recent"]
    return [c for c in recent if c["device"] == device]


def test_register_write_is_read_back_and_out_of_bounds_is_refused(
    tmp_path, mosquitto, influxdb, influx_db, modbus_tcp
):
    # A boiler controller on TCP: its setpoint in tenths of a degree at holding 0x0103,
    # a valve position at 0x0104 that the device will not let be read back (busy); and a
    # meter that stores at most 100 in its pulse width, without an exception.
    sim = modbus_tcp("--unit", f"1={XY}", "--busy", "1:0x0104", "--unit", "2=sdm120",
                     "--clamp", "2:0x000C:100")  # fmt: skip
    meter = {"device": "meter", "tcp": sim.address, "unit_id": 2, "interval": "1h",
             "registers": {"pulse": {"address": 0x000C, "type": "float32", "unit": "ms",
                                     "min": 60, "max": 200, "writable": True}}}  # fmt: skip
    boiler = {
        "device": "boiler", "tcp": sim.address, "unit_id": 1, "interval": "500ms",
        "registers": {
            "temperature": {"address": 1, "table": "input", "type": "int16", "scale": 0.1,
                            "unit": "°C"},
            "setpoint": {"address": 0x0103, "type": "int16", "scale": 0.1, "unit": "°C",
                         "min": 5, "max": 30, "writable": True},
            "valve": {"address": 0x0104, "type": "uint16", "max": 100, "writable": True,
                      "interval": "1h"},
        },
    }  # fmt: skip
    gateway, api, path = start_gateway(tmp_path, mosquitto, influxdb, influx_db,
                                       [boiler, meter])  # fmt: skip
    with gateway:
        wait_until(lambda: devices(api)["boiler"]["online"], what="boiler online")
        sent = command(path, "boiler", "setpoint=21.5")
        acked = wait_until(lambda: [c for c in journal(api, "boiler") if c["outcome"] == "acked"],
                           what="setpoint acked")  # fmt: skip
        stored = wait_until(
            lambda: [v for _, v in values(influxdb, influx_db, "setpoint", "boiler") if v == 21.5],
            what="the new setpoint polled back",
        )
        too_high = command(path, "boiler", "setpoint=35")
        off_step = command(path, "boiler", "setpoint=21.55")
        register_after_refusals = holding(sim, 1, 0x0103)
        busy = command(path, "boiler", "valve=40")
        rejected = wait_until(
            lambda: [c for c in journal(api, "boiler") if c["outcome"] == "rejected"],
            what="valve rejected",
        )
        writes = metric(api, "outpost_modbus_events_total", device="boiler", event="writes_acked")
        clamped = command(path, "meter", "pulse=200")
        held = wait_until(lambda: [c for c in journal(api, "meter") if c["outcome"] == "rejected"],
                          what="pulse rejected")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert acked[0]["set"] == {"setpoint": 21.5} and stored
    assert too_high.returncode == 1 and "above the maximum 30" in too_high.stderr
    assert off_step.returncode == 1 and "not a multiple of 0.1" in off_step.stderr
    # Refused before anything reached the device: it still holds 21.5, one write was made.
    assert register_after_refusals == 215 and writes == 1
    assert busy.returncode == 0, busy.stderr
    assert rejected[0]["set"] == {"valve": 40}
    assert "read back answered exception 06 (device busy)" in rejected[0]["detail"]
    # The device took the write but holds something else: not confirmed.
    assert clamped.returncode == 0, clamped.stderr
    assert held[0]["detail"] == "pulse: wrote 200, the device holds 100"


def gaps(times_ns: list[int]) -> list[float]:
    ordered = sorted(times_ns)
    return [(b - a) / 1e9 for a, b in itertools.pairwise(ordered)]


def test_dead_devices_do_not_delay_the_others(
    tmp_path, mosquitto, influxdb, influx_db, modbus_rtu, modbus_tcp
):
    # One RS-485 line (a socat pty pair): a healthy sensor (unit 1) and a unit nobody
    # answers for (7); and a TCP device on its own link whose server is then killed.
    line = modbus_rtu("--unit", f"1={XY}", "--silent", "7")
    far = modbus_tcp("--unit", f"1={XY}")
    rtu = {"port": str(line.port), "baudrate": 9600}
    interval, dead_timeout = 0.5, 0.3
    gateway, api, path = start_gateway(tmp_path, mosquitto, influxdb, influx_db, [
        {"device": "climate", "rtu": rtu, "unit_id": 1, "profile": XY, "interval": interval},
        {"device": "dead", "rtu": rtu, "unit_id": 7, "profile": XY, "interval": interval,
         "timeout": dead_timeout, "retries": 3},
        {"device": "far", "tcp": far.address, "unit_id": 1, "profile": XY, "interval": interval},
    ], devices={"dead": {"ack_timeout": "300ms", "retries": 1}})  # fmt: skip
    with gateway:
        wait_until(lambda: (d := devices(api))["far"]["online"] and d["climate"]["online"],
                   what="far and climate online")  # fmt: skip
        far.kill()
        listed = wait_until(
            lambda: (d := devices(api)) and d["far"]["last_seen"] is not None
            and not d["far"]["online"] and d["dead"]["online_reason"] == "availability" and d,
            timeout=10, what="far and dead offline",
        )
        # A command to the dead unit gets no answer: retried, then timed out, like any device's.
        command(path, "dead", "temperature_offset=1.5")
        start = len(values(influxdb, influx_db, "temperature", "climate"))
        wait_until(lambda: len(values(influxdb, influx_db, "temperature", "climate")) >= start + 12,
                   timeout=20, what="12 more polls of climate")  # fmt: skip
        timeouts = metric(api, "outpost_modbus_requests_total", device="dead", outcome="timeouts")
        timed_out = wait_until(lambda: [c for c in journal(api, "dead")
                                        if c["outcome"] == "timed_out"], what="timed out")
        unreachable = metric(api, "outpost_modbus_requests_total", device="far",
                             outcome="unreachable:no_connection")  # fmt: skip
    polled = [t for t, _ in values(influxdb, influx_db, "temperature", "climate")][start:]
    # While the dead unit times out on the same line, each of climate's polls waits for
    # at most one of its probes (one attempt, no retries while offline).
    assert max(gaps(polled)) <= interval + dead_timeout + 0.2, gaps(polled)
    assert timeouts >= 5 and unreachable >= 1
    assert (listed["dead"]["online"], listed["dead"]["online_reason"]) == (False, "availability")
    assert (listed["far"]["online"], listed["far"]["online_reason"]) == (False, "availability")
    assert listed["dead"]["convention"] == "modbus"
    assert timed_out[0]["set"] == {"temperature_offset": 1.5} and timed_out[0]["attempts"] == 2


def test_exception_responses_are_counted_per_register(
    tmp_path, mosquitto, influxdb, influx_db, modbus_tcp
):
    sim = modbus_tcp("--unit", f"1={XY}", "--unit", f"2={XY}", "--unit", f"9={XY}",
                     "--busy", "2:0x0001", "--gateway-dead", "9",
                     "--values", '{"1": {"temperature": 19.5}}')  # fmt: skip
    link = {"tcp": sim.address, "profile": XY, "interval": "300ms"}
    gateway, api, _ = start_gateway(tmp_path, mosquitto, influxdb, influx_db, [
        # input register 3 is not in the device's map: the merged read 1…3 answers 02
        {"device": "climate", "unit_id": 1, **link,
         "registers": {"missing": {"address": 3, "table": "input"}}},
        {"device": "busy", "unit_id": 2, **link},            # its inputs answer 06
        {"device": "ghost", "unit_id": 5, **link},           # no such unit: 04 (pymodbus)
        {"device": "behind_gateway", "unit_id": 9, **link},  # 0B: the target did not respond
    ])  # fmt: skip

    def count(device: str, register: str, code: str) -> float:
        return metric(api, "outpost_modbus_exceptions_total", device=device,
                      register=register, code=code)  # fmt: skip

    with gateway:
        wait_until(lambda: count("climate", "missing", "02") >= 4, what="four polls refused")
        found = {
            key: count(*key)
            for key in [("climate", "missing", "02"), ("climate", "temperature", "02"),
                        ("busy", "temperature", "06"), ("busy", "humidity", "06"),
                        ("busy", "temperature_offset", "06"), ("ghost", "temperature", "04")]
        }  # fmt: skip
        splits = metric(api, "outpost_modbus_events_total", device="climate", event="split_reads")
        listed = devices(api)
        log = gateway.log()
    assert found[("climate", "missing", "02")] >= 4
    assert found[("climate", "temperature", "02")] == 0  # the split read it apart, for good
    assert splits == 1
    assert found[("busy", "temperature", "06")] >= 1 and found[("busy", "humidity", "06")] >= 1
    assert found[("busy", "temperature_offset", "06")] == 0  # its holding registers answer
    assert found[("ghost", "temperature", "04")] >= 1
    assert values(influxdb, influx_db, "temperature", "climate")[0][1] == 19.5
    assert listed["busy"]["online"] and listed["busy"]["metrics"]["temperature_offset"]
    assert not listed["behind_gateway"]["online"]
    # Logged once per register and code per minute, however often it happens.
    assert log.count("missing (input register 3) answered exception 02") == 1
