#!/bin/sh
# Mosquitto in docker-compose.yml: write the password file from the environment, then
# run the broker. The passwords come from MQTT_GATEWAY_PASSWORD / MQTT_SIMULATOR_PASSWORD
# (set them in .env; `make secure` prints random ones). The file lives in the data
# volume, readable by the mosquitto user only, and is rewritten at every start so a
# changed password takes effect on `docker compose up`.
set -eu
umask 077
file=/mosquitto/data/passwd
: > "$file"
mosquitto_passwd -b "$file" outpost "$MQTT_GATEWAY_PASSWORD"
mosquitto_passwd -b "$file" simulator "$MQTT_SIMULATOR_PASSWORD"
chown mosquitto:mosquitto "$file" 2>/dev/null || true
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
