#!/bin/sh
# Mosquitto in docker-compose.yml: write the password file from the environment, then
# run the broker. The passwords come from MQTT_GATEWAY_PASSWORD / MQTT_SIMULATOR_PASSWORD
# (set them in .env; scripts/compose-env.sh writes random ones). The file lives in the
# data volume, readable by the mosquitto user only, and is rewritten at every start so a
# changed password takes effect on `docker compose up`.
#
# No password is ever in a command's arguments, which every user of the host can list
# (ps): mosquitto_passwd reads each one on its standard input (`printf` is built into
# the shell), and the healthcheck's mosquitto_sub reads the gateway's login from its
# options file in $XDG_CONFIG_HOME.
set -eu
umask 077
file=/mosquitto/data/passwd
add_login() {  # add_login USER PASSWORD
  printf '%s\n%s\n' "$2" "$2" | mosquitto_passwd "$file" "$1" > /dev/null
}
: > "$file"
add_login outpost "$MQTT_GATEWAY_PASSWORD"
add_login simulator "$MQTT_SIMULATOR_PASSWORD"
chown mosquitto:mosquitto "$file" 2>/dev/null || true
mkdir -p "$XDG_CONFIG_HOME"
printf -- '-u outpost\n-P %s\n' "$MQTT_GATEWAY_PASSWORD" > "$XDG_CONFIG_HOME/mosquitto_sub"
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
