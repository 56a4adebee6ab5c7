# Outpost gateway and simulator image (docker-compose.yml builds it for both).
#   docker build -t outpost .
#   docker run --rm outpost simulate --host BROKER
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what `pip install .` needs (the build context is trimmed by .dockerignore too):
# the packaging metadata first, then the packages.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY rules ./rules
COPY devices ./devices
COPY simulators ./simulators
COPY wire ./wire
RUN pip install . \
    && rm -rf /src/build

# Never run as root: the gateway only needs its state directory. Created here with
# the right owner so a fresh named volume mounted on it inherits that owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/outpost outpost \
    && mkdir -p /var/lib/outpost /etc/outpost \
    && chown outpost:outpost /var/lib/outpost
USER outpost
WORKDIR /var/lib/outpost
VOLUME ["/var/lib/outpost"]

EXPOSE 8080
ENTRYPOINT ["outpost"]
# No file mounted: ./outpost.yaml in the state dir if present, else built-in defaults.
CMD ["run"]
