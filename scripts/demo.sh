#!/usr/bin/env bash
# make demo: the whole Outpost set-up on a fresh Debian / Raspberry Pi OS machine.
#
# Installs Mosquitto and InfluxDB 1.x with apt when missing, uses a broker or a
# database already listening on the default ports (1883, 8086), otherwise starts
# its own under ./var/demo/ on those ports (on free ones when something else holds
# them). Then runs the simulator and the gateway in the foreground (dashboard on
# 8080, or a free port) and prints the addresses to open. Ctrl-C stops everything
# this script started, and nothing else.
#
# Its own Mosquitto runs with authentication on: a password file and the shipped ACL
# (deploy/mosquitto/acl), with random passwords for the gateway (user `outpost`) and the
# simulator (user `simulator`) in var/demo/secrets/, readable by you only. A broker
# found on 1883 is used as it is: its authentication is its own business (give the
# gateway a login with MQTT_USER/MQTT_PASSWORD, the simulator with MQTT_SIM_USER/
# MQTT_SIM_PASSWORD).
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
# The command as you can type it from the checkout (the venv's bin/ is not on PATH).
SHOWN_OUTPOST=${OUTPOST#"$ROOT"/}

# --- services: reuse what listens, else start our own -------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The default port when nothing listens on it, else a free one.
port_or_free() { if listening "$1"; then free_port; else echo "$1"; fi; }

# Services run in their own session (setsid), so Ctrl-C in the terminal reaches only
# this script and the gateway; cleanup stops the rest, newest first.
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  # Newest first: the gateway flushes to InfluxDB and says offline before the broker
  # and the database it talks to go away.
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    kill "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  say "stopped everything the demo started"
}
trap cleanup EXIT INT TERM

# Secrets: random, one file each, owner-only; kept across runs (same logins every time).
SECRETS=$DEMO/secrets
(umask 077; mkdir -p "$SECRETS")
secret_file() {
  [ -s "$1" ] || (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$1")
}
secret_file "$SECRETS/api.token"

if listening 1883; then
  MQTT_PORT=1883
  AUTH_NOTE="MQTT logins: those of the broker on 1883 (not the demo's business)"
  say "using the MQTT broker already listening on 127.0.0.1:1883"
  say "its authentication and ACL are that broker's business, not the demo's: set MQTT_USER/MQTT_PASSWORD (gateway) and MQTT_SIM_USER/MQTT_SIM_PASSWORD (simulator) if it wants logins"
  MQTT_GATEWAY='username: "${MQTT_USER:-}", password: "${MQTT_PASSWORD:-}"'
  MQTT_SIMULATOR='username: "${MQTT_SIM_USER:-}", password: "${MQTT_SIM_PASSWORD:-}"'
  MQTT_LOGIN=""
else
  MQTT_PORT=1883
  AUTH_NOTE="MQTT logins on: password file + ACL in var/demo/mosquitto/, passwords in var/demo/secrets/"
  mkdir -p "$DEMO/mosquitto"
  # Logins for the gateway and the simulator, hashed by mosquitto_passwd; the ACL is the
  # shipped one: devices only under their own topics, commands only from the gateway.
  secret_file "$SECRETS/outpost.pass"
  secret_file "$SECRETS/simulator.pass"
  # The passwords go in on mosquitto_passwd's standard input (twice: password and
  # confirmation), never in its arguments, which every local user can list (ps).
  (umask 077
   : > "$DEMO/mosquitto/passwd"
   for login in outpost simulator; do
     IFS= read -r password < "$SECRETS/$login.pass"
     printf '%s\n%s\n' "$password" "$password" \
       | mosquitto_passwd "$DEMO/mosquitto/passwd" "$login" > /dev/null
   done
   cp deploy/mosquitto/acl "$DEMO/mosquitto/acl")
  MQTT_GATEWAY="username: outpost, password_file: secrets/outpost.pass"
  MQTT_SIMULATOR="username: simulator, password_file: secrets/simulator.pass"
  MQTT_LOGIN="-u outpost -P \"\$(cat var/demo/secrets/outpost.pass)\" "
  sed -e "s/^listener 1883$/listener $MQTT_PORT 127.0.0.1/" \
      -e "s#^persistence_location .*#persistence_location $DEMO/mosquitto/#" \
      -e "s#^password_file .*#password_file $DEMO/mosquitto/passwd#" \
      -e "s#^acl_file .*#acl_file $DEMO/mosquitto/acl#" \
      deploy/mosquitto/mosquitto.conf > "$DEMO/mosquitto.conf"
  # Started as root, mosquitto drops to its own user, which cannot write under /root.
  if [ "$(id -u)" -eq 0 ]; then echo "user root" >> "$DEMO/mosquitto.conf"; fi
  setsid "$MOSQUITTO" -c "$DEMO/mosquitto.conf" > "$DEMO/mosquitto.log" 2>&1 &
  PIDS+=($!)
  say "started Mosquitto on 127.0.0.1:$MQTT_PORT with logins and an ACL (log: var/demo/mosquitto.log)"
fi

if curl -sf -o /dev/null "http://127.0.0.1:8086/ping"; then
  INFLUX_PORT=8086
  say "using the InfluxDB already listening on 127.0.0.1:8086"
else
  INFLUX_PORT=$(port_or_free 8086)   # taken by something that is not InfluxDB: a free one
  RPC_PORT=$(port_or_free 8088)
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
  setsid influxd -config "$DEMO/influxd.conf" > "$DEMO/influxd.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$INFLUX_PORT/ping" && break; sleep 0.1; done
  say "started InfluxDB 1.x on 127.0.0.1:$INFLUX_PORT (log: var/demo/influxd.log)"
fi

HTTP_PORT=$(port_or_free 8080)

cat > "$DEMO/outpost.yaml" <<CONF
# Written by make demo. Copy it as a starting point for your own outpost.yaml.
# Secrets are in files (var/demo/secrets/, mode 600), never inline.
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: outpost-demo, $MQTT_GATEWAY}
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
    commands: {speed: {type: int, min: 0, max: 100}, mode: {enum: ["auto", "manual"]}}
  heater-1:
    commands: {power: {enum: ["on", "off"]}, level: {type: int, min: 0, max: 100}}
  pump-1:
    commands: {power: {enum: ["on", "off"]}, flow: {type: int, min: 0, max: 100}}
http: {listen: "127.0.0.1:$HTTP_PORT", token_file: secrets/api.token}
state_dir: ./state
CONF

cat > "$DEMO/simulator.yaml" <<CONF
# Written by make demo: the simulator's own login (outpost simulate -c reads mqtt: only).
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, $MQTT_SIMULATOR}
CONF

# The closed-loop greenhouse: the sun heats gh-1, fan-1 cools it when told to. The
# physics run 20x faster than the clock, so a sunny morning passes in minutes.
setsid "$OUTPOST" simulate -c "$DEMO/simulator.yaml" --scenario greenhouse --speed 20 --rate 2 --seed 1 \
  > "$DEMO/simulator.log" 2>&1 &
PIDS+=($!)

cat <<TEXT

  Outpost demo: a simulated greenhouse (sensors gh-1, gh-2; fan-1, heater-1, pump-1)
    -> MQTT 127.0.0.1:$MQTT_PORT -> gateway -> InfluxDB 127.0.0.1:$INFLUX_PORT

  Open:
    dashboard         http://127.0.0.1:$HTTP_PORT/
    gateway status    http://127.0.0.1:$HTTP_PORT/api/v1/status   (metrics: /metrics)
    InfluxDB 1.x      http://127.0.0.1:$INFLUX_PORT   database outpost
    MQTT broker       mqtt://127.0.0.1:$MQTT_PORT

  Within about a minute gh-1 passes 30 °C: greenhouse_hot goes pending, fires after its
  1 minute, the gateway tells fan-1 to run at 100 %, the fan acknowledges, the air cools,
  and below 28 °C the alert resolves and the fan is switched off. Follow it with
    $SHOWN_OUTPOST events -c var/demo/outpost.yaml --since 10m

  See the readings arrive (in another terminal):
    curl -sG http://127.0.0.1:$INFLUX_PORT/query --data-urlencode db=outpost \\
      --data-urlencode "q=SELECT last(value) FROM temperature GROUP BY device"
  or with the influx shell:  influx -port $INFLUX_PORT -database outpost -execute 'SHOW MEASUREMENTS'
  Watch alerts and commands:   mosquitto_sub -p $MQTT_PORT $MQTT_LOGIN-t 'outpost/#' -t 'devices/+/set' -v
  Watch the raw MQTT traffic:  mosquitto_sub -p $MQTT_PORT $MQTT_LOGIN-t 'sensors/#' -v
  Command the fan by hand:     $SHOWN_OUTPOST command -c var/demo/outpost.yaml fan-1 speed=50
                               (the API token is var/demo/secrets/api.token)
  $AUTH_NOTE
  Rules in use: examples/greenhouse/rules.yaml (check: $SHOWN_OUTPOST rules check FILE)
  Config used: var/demo/outpost.yaml   Simulator log: var/demo/simulator.log

  Ctrl-C stops the demo.

TEXT

cd "$DEMO"
"$OUTPOST" run -c "$DEMO/outpost.yaml" &
GATEWAY=$!
PIDS+=($GATEWAY)
wait "$GATEWAY" || true
