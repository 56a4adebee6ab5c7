"""Helper processes for the benchmarks: a fast QoS 0 publisher and a counting subscriber.

Run as ``python -m benchmarks._mqtt_load publish PORT COUNT DEVICES`` (prints the
wall-clock start and end) or ``… count PORT COUNT TOPIC`` (prints the wall-clock
time of the first and last message once COUNT have arrived). Both use paho-mqtt
directly, so the publisher is identical for every measurement.
"""

from __future__ import annotations

import sys
import threading
import time

import paho.mqtt.client as mqtt


def publish(port: int, count: int, devices: int, qos: int = 0) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topics = [f"sensors/bench-{d:04d}/temperature" for d in range(devices)]
    started = time.time()
    for i in range(count):
        client.publish(topics[i % devices], f"{20 + (i % 1000) / 100:.2f}", qos=qos)
        if i % 500 == 0:
            # Keep paho's own queue short: memory, not the broker, would be measured.
            while len(client._out_packet) > 2000:
                time.sleep(0.0005)
    while client._out_packet:
        time.sleep(0.002)
    ended = time.time()
    client.disconnect()
    client.loop_stop()
    print(f"{started} {ended}", flush=True)


def count(port: int, expected: int, topic: str) -> None:
    state = {"n": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        if not state["n"]:
            state["first"] = now
        state["n"] += 1
        state["last"] = now
        if state["n"] >= expected:
            done.set()

    def on_connect(client: mqtt.Client, *args: object) -> None:
        client.subscribe(topic, qos=0)

    # Same protocol version as the gateway's ingest client (MQTT 5).
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"bench-sub-{time.time_ns()}",
        protocol=mqtt.MQTTv5,
    )
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(0.3)
    print("ready", flush=True)
    done.wait(300)
    client.loop_stop()
    print(f"{state['n']} {state['first']} {state['last']}", flush=True)


if __name__ == "__main__":
    verb, port, n, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if verb == "publish":
        publish(port, n, int(extra), int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    else:
        count(port, n, extra)
