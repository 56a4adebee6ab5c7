#!/usr/bin/env bash
# Random secrets for docker-compose.yml, which has no default for any of them.
#
#   scripts/compose-env.sh [--out FILE] [--force]
#
# Writes FILE (default: .env next to docker-compose.yml, where compose reads it), readable
# by you only, with INFLUX_TOKEN, INFLUX_PASSWORD, MQTT_GATEWAY_PASSWORD,
# MQTT_SIMULATOR_PASSWORD, GRAFANA_PASSWORD and OUTPOST_API_TOKEN (the gateway's API
# token). An existing FILE is kept (InfluxDB and Grafana keep the first password they
# were given in their volumes): --force replaces it.
# MQTT_BIND / OUTPOST_BIND (where compose publishes the ports, 127.0.0.1 by default) can
# be added to the file by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.env
FORCE=0
usage() { sed -n '2,/^set -e/{/^set -e/d;p}' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done
if [ -e "$OUT" ] && [ $FORCE -eq 0 ]; then
  echo "$OUT exists; keeping it (--force replaces it: InfluxDB and Grafana keep the old" \
       "passwords in their volumes until those are removed)" >&2
  exit 1
fi
command -v openssl >/dev/null || { echo "openssl not found (apt-get install openssl)" >&2; exit 1; }

# 32 characters from 24 random bytes; base64url so the value needs no quoting anywhere.
secret() { openssl rand -base64 24 | tr '+/' '-_'; }

umask 077
tmp=$(mktemp "$OUT.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
  echo "# Written by scripts/compose-env.sh: the secrets of docker-compose.yml. Keep private."
  for name in INFLUX_TOKEN INFLUX_PASSWORD MQTT_GATEWAY_PASSWORD MQTT_SIMULATOR_PASSWORD \
              GRAFANA_PASSWORD OUTPOST_API_TOKEN; do
    echo "$name=$(secret)"
  done
} > "$tmp"
mv "$tmp" "$OUT"
trap - EXIT
echo "wrote $OUT (mode 600): docker compose up --build"
