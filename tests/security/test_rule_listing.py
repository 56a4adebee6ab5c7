"""A rule folder that cannot be listed during a reload must not unload every rule.

The config names rule files by globs; ``glob.glob`` answers "no files" to any
error while listing a folder. Out of file descriptors (EMFILE), or with the
folder replaced by a file, a reload found no rule files and replaced the running
rules with none: every alert and every command stopped, silently. Now the reload
is refused, logged and journaled; the rules keep running, and the next poll that
can list the folder again reloads it.
"""

from __future__ import annotations

import json
import os
import resource
import signal

from tests.gateway.harness import Device, GatewayProcess
from tests.security.rulegateway import api_base, hot_fires, rules_gateway_config
from tests.services import http_request


def lowest_free_fd(pid: int) -> int:
    """The descriptor number the process's next open() would get."""
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    fd = 0
    while fd in used:
        fd += 1
    return fd


def reload_events(base: str) -> list[dict]:
    status, _, body = http_request("GET", f"{base}/api/v1/events?limit=1000")
    assert status == 200, body
    return [e["event"] for e in json.loads(body)["events"] if e["kind"] == "rules_reload"]


def test_running_out_of_file_descriptors_during_a_reload_keeps_the_rules(
        tmp_path, mosquitto, influxdb, influx_db) -> None:
    config = rules_gateway_config(tmp_path, mosquitto, influxdb, influx_db)
    folder = tmp_path / "rules.d"
    with GatewayProcess(config) as gateway, \
            Device(mosquitto.port, subscribe=["outpost/alerts/#"]) as device:
        assert gateway.proc is not None
        pid = gateway.proc.pid
        base = api_base(config)
        assert hot_fires(device, "gh-1")
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        # From now on every open() of the gateway fails with EMFILE, as when a
        # leak or a flood of connections has used up its descriptors.
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid), hard))
        try:
            gateway.proc.send_signal(signal.SIGHUP)
            gateway.wait_log("cannot list rule files: Too many open files", timeout=15)
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        assert hot_fires(device, "gh-2"), "the rules were unloaded"
        gateway.wait_log("rules reloaded: 1 kept", timeout=15)  # listable again: reloaded
        refused, applied = reload_events(base)
    assert refused["outcome"] == "refused" and refused["running"] == 1
    assert refused["errors"] == [f"{folder}:1:1: cannot list rule files: Too many open files"]
    assert (applied["outcome"], applied["kept"], applied["running"]) == ("applied", 1, 1)


def test_a_rule_folder_replaced_by_a_file_keeps_the_rules(
        tmp_path, mosquitto, influxdb, influx_db) -> None:
    config = rules_gateway_config(tmp_path, mosquitto, influxdb, influx_db)
    folder = tmp_path / "rules.d"
    with GatewayProcess(config) as gateway, \
            Device(mosquitto.port, subscribe=["outpost/alerts/#"]) as device:
        base = api_base(config)
        folder.rename(tmp_path / "rules.moved")
        folder.write_text("not a folder\n")
        gateway.wait_log("cannot list rule files: Not a directory", timeout=15)
        assert hot_fires(device, "gh-1"), "the rules were unloaded"
        folder.unlink()
        (tmp_path / "rules.moved").rename(folder)
        gateway.wait_log("rules reloaded: 1 kept", timeout=15)
        refused, applied = reload_events(base)
    assert refused["errors"] == [f"{folder}:1:1: cannot list rule files: Not a directory"]
    assert applied["outcome"] == "applied"

