"""A raw paho-mqtt subscriber that only counts: the baselines of the benchmark.

    python -m benchmarks.counter --port P --topic 'bench/#' --count N --client-id ID
                                 [--protocol 311|5] [--qos 0|1]

It subscribes, counts messages (paho acknowledges QoS 1 ones itself, on receipt) and,
once N have arrived or none came for ``--idle`` seconds, prints
``{"received": n, "last": <wall-clock time of the last one>}``. It then stays until its
stdin is closed, so whoever measures it can still read its /proc figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

PROTOCOLS = {"311": mqtt.MQTTv311, "5": mqtt.MQTTv5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="311")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--idle", type=float, default=15.0, help="give up after this long")
    args = parser.parse_args()

    received = 0
    last = time.time()
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received, last
        received += 1
        last = time.time()
        if received == args.count:
            done.set()

    def on_connect(client: mqtt.Client, *_: object) -> None:
        client.subscribe(args.topic, qos=args.qos)

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=args.client_id,
        protocol=PROTOCOLS[args.protocol],
    )
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    while not done.wait(0.2) and time.time() - last < args.idle:
        pass
    print(json.dumps({"received": received, "last": last}), flush=True)
    sys.stdin.read()
    client.loop_stop()


if __name__ == "__main__":
    main()
