"""An edge node built with the third-party library mqtt-spb-wrapper 2.1.2 (and its own
paho-mqtt 1.6.1 and protobuf 3.20.3), run by the tests in a virtualenv of its own.

It imports nothing of Outpost. Driven over stdin, one command a line; it answers on
stdout, one event a line:

    start HOST PORT    connect the edge node plant2/wrap-1 and its device wrap-dev, birth both
    data JSON          set the device's data values and publish a DDATA
    gap N              skip N sequence numbers (the library keeps one counter per process)
    quit

    ready              after start
    command JSON       the device got a DCMD (it then reports the value in a DDATA)
    crash TEXT         a network thread died of an exception (its name and the error)
"""

from __future__ import annotations

import json
import sys
import threading
import time

from mqtt_spb_wrapper import MqttSpbEntityDevice, MqttSpbEntityEdgeNode
from mqtt_spb_wrapper.spb_protobuf import sparkplug_b


def say(*words: str) -> None:
    print(*words, flush=True)


def on_thread_crash(args: threading.ExceptHookArgs) -> None:
    say(
        "crash",
        f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: {args.exc_value}",
    )


def main() -> None:
    threading.excepthook = on_thread_crash
    node = device = None
    for line in sys.stdin:
        verb, _, rest = line.strip().partition(" ")
        if verb == "start":
            host, port = rest.split()
            node = MqttSpbEntityEdgeNode("plant2", "wrap-1")
            node.attributes.set_value("model", "wrapper")
            device = MqttSpbEntityDevice("plant2", "wrap-1", "wrap-dev")
            device.attributes.set_value("serial", "W-1")
            device.data.set_value("temperature", 20.5)
            device.data.set_value("pump", False)
            device.commands.set_value("pump", False)

            def on_command(payload, device=device):
                for metric in payload.get("metrics", []):
                    device.data.set_value(metric["name"], metric["value"])
                device.publish_data()
                say("command", json.dumps(payload.get("metrics", []), default=str))

            device.on_command = on_command
            node.connect(host, int(port))
            device.connect(host, int(port))
            node.publish_birth()
            time.sleep(0.3)  # the device's birth follows the node's, on another connection
            device.publish_birth()
            say("ready")
        elif verb == "data" and device is not None:
            for name, value in json.loads(rest).items():
                device.data.set_value(name, value)
            device.publish_data()
        elif verb == "gap":
            sparkplug_b.seqNum = (sparkplug_b.seqNum + int(rest)) % 256
        elif verb == "quit":
            break


if __name__ == "__main__":
    main()
