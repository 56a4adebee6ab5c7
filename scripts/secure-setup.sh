#!/usr/bin/env bash
# make secure: credentials and certificates for a new Outpost install.
#
#   scripts/secure-setup.sh [--out DIR] [--host NAME_OR_IP]... [--devices N] [--prefix P]
#                           [--device ID]... [--days N] [--force]
#
# Creates, under DIR (default ./var/secure), readable by you only (umask 077):
#   ca/ca.crt, ca/ca.key            a certificate authority of your own (keep ca.key offline)
#   mosquitto/broker.crt, .key      the broker's certificate, valid for every --host given
#   mosquitto/outpost.passwd        the password file (hashed by mosquitto_passwd, the
#                                   passwords fed on its standard input, never in its
#                                   arguments), for the gateway (user `outpost`) and each
#                                   device (user = device id)
#   mosquitto/outpost.acl           the ACL (deploy/mosquitto/acl)
#   outpost/gateway.crt, .key       the gateway's client certificate (mutual TLS)
#   outpost/ca.crt                  the CA the gateway checks the broker against
#   outpost/mqtt.pass, api.token    the gateway's MQTT password and HTTP API token
#   devices/<id>.pass               one random password per device
# Device ids the ACL gives rights of their own (`user` lines: outpost, simulator) are
# refused: a device logging in with one would get those rights (the gateway's login
# commands every device; the simulator's speaks for all of them).
# then prints the snippets for mosquitto.conf and outpost.yaml. Nothing is installed
# for you: copy the files where the snippets say (the commands are printed too).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

OUT=$ROOT/var/secure
HOSTS=()
DEVICES=()
COUNT=0
PREFIX=device-
DAYS=825          # the longest validity clients such as Apple's accept for a server cert
FORCE=0
GATEWAY_USER=outpost

usage() { sed -n '2,/^set -e/{/^set -e/d;p}' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --host) HOSTS+=("$2"); shift 2 ;;
    --devices) COUNT=$2; shift 2 ;;
    --prefix) PREFIX=$2; shift 2 ;;
    --device) DEVICES+=("$2"); shift 2 ;;
    --days) DAYS=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done
for i in $(seq 1 "$COUNT"); do DEVICES+=("$PREFIX$i"); done
if [ ${#HOSTS[@]} -eq 0 ]; then HOSTS=(localhost 127.0.0.1 "$(hostname)"); fi
ACL=deploy/mosquitto/acl
# Logins with rights of their own in the ACL (`user NAME` lines), and the gateway's.
RESERVED=$(sed -n 's/^user[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$ACL")
RESERVED=$(printf '%s\n%s\n' "$GATEWAY_USER" "$RESERVED" | sort -u)
for id in "${DEVICES[@]}"; do
  # The ACL puts the username in topics (%u); mosquitto refuses + # / there, and so do we.
  case $id in
    *[+#/:\ ]*|"") echo "device id '$id' cannot be a username (no + # / : or space)" >&2; exit 2 ;;
  esac
  while IFS= read -r name; do
    if [ "${id,,}" = "${name,,}" ]; then
      echo "device id '$id' is reserved: $ACL gives the login '$name' rights beyond one" \
           "device's topics; choose another id" >&2
      exit 2
    fi
  done <<< "$RESERVED"
done
for tool in openssl mosquitto_passwd; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install openssl mosquitto)" >&2; exit 1; }
done
if [ -e "$OUT/ca/ca.key" ] && [ $FORCE -eq 0 ]; then
  echo "$OUT already holds a CA; use --force to replace everything in it" >&2
  exit 1
fi

umask 077
mkdir -p "$OUT"/{ca,mosquitto,outpost,devices}
chmod 700 "$OUT" "$OUT"/{ca,mosquitto,outpost,devices}
secret() { openssl rand -base64 32 | tr -d '/+=\n' | cut -c1-32; }
ssl() { openssl "$@" 2>/dev/null; }

# --- certificates: P-256 keys (fast on a Raspberry Pi, supported by every MQTT stack) ---
san=""
for h in "${HOSTS[@]}"; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+="IP:$h,"; else san+="DNS:$h,"; fi
done
san=${san%,}
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

ssl req -x509 "${newkey[@]}" -days 3650 -subj "/CN=Outpost CA $(hostname)" \
  -keyout "$OUT/ca/ca.key" -out "$OUT/ca/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

sign() {  # sign NAME SUBJECT_CN EXTENSIONS → $OUT/NAME.crt from $OUT/NAME.csr
  local name=$1 cn=$2 ext=$3
  ssl req "${newkey[@]}" -subj "/CN=$cn" -keyout "$OUT/$name.key" -out "$OUT/$name.csr"
  printf '%s\n' "$ext" > "$OUT/$name.ext"
  ssl x509 -req -in "$OUT/$name.csr" -CA "$OUT/ca/ca.crt" -CAkey "$OUT/ca/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -extfile "$OUT/$name.ext" \
    -out "$OUT/$name.crt"
  rm -f "$OUT/$name.csr" "$OUT/$name.ext"
}
sign mosquitto/broker "${HOSTS[0]}" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"
sign outpost/gateway "$GATEWAY_USER" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
cp "$OUT/ca/ca.crt" "$OUT/outpost/ca.crt"
cp "$OUT/ca/ca.crt" "$OUT/mosquitto/ca.crt"

# --- passwords: random, one file each, owner-only ----------------------------------------
passwd=$OUT/mosquitto/outpost.passwd
# add_login USER FILE: hash the password in FILE into $passwd. mosquitto_passwd reads it
# (twice: password and confirmation) on its standard input; `printf` is a shell builtin,
# so the password is in no process's arguments, which every local user can list (ps).
add_login() {
  local password
  IFS= read -r password < "$2"
  printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$passwd" "$1" > /dev/null
}
secret > "$OUT/outpost/mqtt.pass"
secret > "$OUT/outpost/api.token"
: > "$passwd"
add_login "$GATEWAY_USER" "$OUT/outpost/mqtt.pass"
for id in "${DEVICES[@]}"; do
  secret > "$OUT/devices/$id.pass"
  add_login "$id" "$OUT/devices/$id.pass"
done
cp "$ACL" "$OUT/mosquitto/outpost.acl"
chmod 600 "$OUT"/*/*
chmod 644 "$OUT"/{ca,outpost,mosquitto}/ca.crt "$OUT"/mosquitto/broker.crt "$OUT"/outpost/gateway.crt

B=""; N=""
if [ -t 1 ]; then B=$(tput bold 2>/dev/null || true); N=$(tput sgr0 2>/dev/null || true); fi
cat <<TEXT

${B}Outpost credentials written to $OUT${N} (only you can read the secrets)
  broker certificate for: ${HOSTS[*]}   valid $DAYS days
  MQTT users: $GATEWAY_USER (the gateway)${DEVICES:+, ${DEVICES[*]}}

${B}1. Mosquitto${N} (Debian: files readable by the mosquitto user only)
  sudo install -d -m 750 -o root -g mosquitto /etc/mosquitto/certs
  sudo install -m 640 -o root -g mosquitto $OUT/mosquitto/{ca.crt,broker.crt,broker.key} /etc/mosquitto/certs/
  sudo install -m 640 -o root -g mosquitto $OUT/mosquitto/outpost.passwd $OUT/mosquitto/outpost.acl /etc/mosquitto/
  and in /etc/mosquitto/conf.d/outpost.conf (see deploy/mosquitto/mosquitto.conf):

    per_listener_settings false
    allow_anonymous false
    password_file /etc/mosquitto/outpost.passwd
    acl_file /etc/mosquitto/outpost.acl
    listener 1883            # devices without TLS (password + ACL); bind it to your LAN address
    listener 8883            # TLS, client certificate required (the gateway)
    cafile /etc/mosquitto/certs/ca.crt
    certfile /etc/mosquitto/certs/broker.crt
    keyfile /etc/mosquitto/certs/broker.key
    require_certificate true
    tls_version tlsv1.2

  sudo systemctl restart mosquitto

${B}2. The gateway${N}: copy $OUT/outpost/ to /etc/outpost/ (owned by the user the gateway
  runs as, mode 600), then in outpost.yaml:

    mqtt:
      host: ${HOSTS[0]}             # must be a name or IP the broker certificate holds
      port: 8883
      username: $GATEWAY_USER
      password_file: /etc/outpost/mqtt.pass
      tls: {ca: /etc/outpost/ca.crt, cert: /etc/outpost/gateway.crt, key: /etc/outpost/gateway.key}
    http:
      listen: 127.0.0.1:8080
      token_file: /etc/outpost/api.token   # outpost command / silence send it for you

  Check: outpost config check -c /etc/outpost/outpost.yaml   (warns about readable secrets)

${B}3. Devices${N}: each logs in with its device id and the password in $OUT/devices/<id>.pass,
  publishes only sensors/<id>/… and devices/<id>/status|ack, and reads devices/<id>/set.
  A device that speaks TLS gets ca.crt and port 8883 (it needs a client certificate there:
  sign one with ca/ca.key like outpost/gateway.crt, CN = device id). Add a device later:
    (umask 077; openssl rand -base64 24 > NEW-ID.pass)
    cat NEW-ID.pass NEW-ID.pass | sudo mosquitto_passwd /etc/mosquitto/outpost.passwd NEW-ID
    sudo systemctl reload mosquitto
  (the password goes in on standard input: \`mosquitto_passwd -b\` would show it to
  every local user in the process list). Device ids outpost and simulator are reserved.

  Keep $OUT/ca/ca.key off the gateway once you are done (it signs certificates).
TEXT
