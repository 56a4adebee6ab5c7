#!/usr/bin/env bash
# make demo: the whole Outpost set-up on a fresh Debian / Raspberry Pi OS machine.
#
# Installs Mosquitto and InfluxDB 1.x with apt when missing, uses a broker or a
# database already listening on the default ports (1883, 8086), otherwise starts
# its own under ./var/demo/ on free ports. Then runs the simulator and the gateway
# in the foreground. Ctrl-C stops everything this script started, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO=$ROOT/var/demo
VENV=${VENV:-$ROOT/.venv}
mkdir -p "$DEMO"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- system packages ------------------------------------------------------------------
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto mosquitto-clients)
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

# --- Outpost itself ---------------------------------------------------------------------
if [ ! -x "$VENV/bin/outpost" ]; then
  say "creating $VENV and installing Outpost"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e "$ROOT"
fi
OUTPOST=$VENV/bin/outpost

# --- services: reuse what listens, else start our own -------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  say "stopped everything the demo started"
}
trap cleanup EXIT INT TERM

if listening 1883; then
  MQTT_PORT=1883
  say "using the MQTT broker already listening on 127.0.0.1:1883"
else
  MQTT_PORT=$(free_port)
  mkdir -p "$DEMO/mosquitto"
  sed -e "s/^listener 1883$/listener $MQTT_PORT 127.0.0.1/" \
      -e "s#^persistence_location .*#persistence_location $DEMO/mosquitto/#" \
      deploy/mosquitto/mosquitto.conf > "$DEMO/mosquitto.conf"
  # Started as root, mosquitto drops to its own user, which cannot write under /root.
  if [ "$(id -u)" -eq 0 ]; then echo "user root" >> "$DEMO/mosquitto.conf"; fi
  "$MOSQUITTO" -c "$DEMO/mosquitto.conf" > "$DEMO/mosquitto.log" 2>&1 &
  PIDS+=($!)
  say "started Mosquitto on 127.0.0.1:$MQTT_PORT (log: var/demo/mosquitto.log)"
fi

if curl -sf -o /dev/null "http://127.0.0.1:8086/ping"; then
  INFLUX_PORT=8086
  say "using the InfluxDB already listening on 127.0.0.1:8086"
else
  INFLUX_PORT=$(free_port)
  RPC_PORT=$(free_port)
  cat > "$DEMO/influxd.conf" <<CONF
reporting-disabled = true
# influxd also opens an RPC port (8088 by default); two instances would collide.
bind-address = "127.0.0.1:$RPC_PORT"
[meta]
  dir = "$DEMO/influxdb/meta"
[data]
  dir = "$DEMO/influxdb/data"
  wal-dir = "$DEMO/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  influxd -config "$DEMO/influxd.conf" > "$DEMO/influxd.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$INFLUX_PORT/ping" && break; sleep 0.1; done
  say "started InfluxDB 1.x on 127.0.0.1:$INFLUX_PORT (log: var/demo/influxd.log)"
fi

cat > "$DEMO/outpost.yaml" <<CONF
# Written by make demo. Copy it as a starting point for your own outpost.yaml.
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: outpost-demo}
influx: {url: "http://127.0.0.1:$INFLUX_PORT", database: outpost}
inputs:
  - topic: "sensors/{device}/{metric}"
    format: value
  - topic: "sensors/{device}"
    format: json
    time_field: ts
rules: ["$ROOT/examples/greenhouse/rules.yaml"]
devices:
  fan-1:
    commands: {speed: {type: int, min: 0, max: 100}}
state_dir: ./state
CONF

"$OUTPOST" simulate -c "$DEMO/outpost.yaml" --devices 3 --prefix gh- --rate 1 --seed 1 --style both \
  > "$DEMO/simulator.log" 2>&1 &
PIDS+=($!)

cat <<TEXT

  Outpost demo: 3 simulated greenhouse sensors -> MQTT 127.0.0.1:$MQTT_PORT -> gateway -> InfluxDB 127.0.0.1:$INFLUX_PORT

  See the readings arrive (in another terminal):
    curl -sG http://127.0.0.1:$INFLUX_PORT/query --data-urlencode db=outpost \\
      --data-urlencode "q=SELECT last(value) FROM temperature GROUP BY device"
  or with the influx shell:  influx -port $INFLUX_PORT -database outpost -execute 'SHOW MEASUREMENTS'
  Watch alerts and commands:   mosquitto_sub -p $MQTT_PORT -t 'outpost/#' -t 'devices/+/set' -v
  Watch the raw MQTT traffic:  mosquitto_sub -p $MQTT_PORT -t 'sensors/#' -v
  Rules in use: examples/greenhouse/rules.yaml (check: outpost rules check FILE)
  Config used: var/demo/outpost.yaml   Simulator log: var/demo/simulator.log

  Ctrl-C stops the demo.

TEXT

cd "$DEMO"
"$OUTPOST" run -c "$DEMO/outpost.yaml" &
GATEWAY=$!
PIDS+=($GATEWAY)
wait "$GATEWAY" || true
