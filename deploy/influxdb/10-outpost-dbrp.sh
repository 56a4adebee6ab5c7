#!/bin/sh
# Run once by the influxdb:2 image after its first-start setup (mounted into
# /docker-entrypoint-initdb.d by docker-compose.yml). Maps the InfluxQL database
# "${DOCKER_INFLUXDB_INIT_BUCKET}" / retention policy "autogen" to the setup bucket, so
# Grafana's InfluxQL dashboard (deploy/grafana/) works unchanged on InfluxDB 2.x as on 1.x.
# The image exports DOCKER_INFLUXDB_INIT_BUCKET_ID and configures the influx CLI with the
# admin token before running this script.
set -eu
if influx v1 dbrp list --org "${DOCKER_INFLUXDB_INIT_ORG}" --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
    --hide-headers 2>/dev/null | grep -q .; then
  echo "outpost: DBRP mapping for ${DOCKER_INFLUXDB_INIT_BUCKET} exists"
  exit 0
fi
influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen \
  --default
echo "outpost: InfluxQL database ${DOCKER_INFLUXDB_INIT_BUCKET} (rp autogen) → bucket ${DOCKER_INFLUXDB_INIT_BUCKET}"
