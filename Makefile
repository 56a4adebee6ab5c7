# Outpost — the two commands of the README's Quick start, and a few more.
PYTHON ?= python3
VENV ?= .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# System packages the tests start as real processes (DESIGN.md §8).
TEST_PACKAGES := mosquitto mosquitto-clients influxdb victoria-metrics docker-compose chromium curl socat

.PHONY: demo secure test venv test-deps bench lint fuzz clean

demo:
	scripts/demo.sh

# Certificates, broker password file and ACL, random passwords for a new install.
#   make secure HOST=gw.example.lan DEVICES=3   (more options: scripts/secure-setup.sh --help)
HOST ?=
DEVICES ?= 0
SECURE_OUT ?= var/secure
secure:
	scripts/secure-setup.sh --out $(SECURE_OUT) --devices $(DEVICES) $(if $(HOST),--host $(HOST)) $(SECURE_ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# compat: the checkout goes on sys.path, so a folder named rules/ next to a config
	# (where `python -m gateway` runs) cannot shadow the rules package.
	$(VENV)/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

test-deps:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: test-deps venv
	$(VENV)/bin/python -m pytest -q

# The loaders of every YAML file, fed far more arbitrary input than `make test` does.
FUZZ_EXAMPLES ?= 20000
fuzz: venv
	OUTPOST_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/python -m pytest -q -o timeout=0 tests/fuzz

lint: venv
	$(VENV)/bin/ruff check gateway rules devices simulators tests benchmarks
	$(VENV)/bin/mypy

bench: venv test-deps
	$(VENV)/bin/python -m benchmarks.bench

clean:
	rm -rf $(VENV) var schemas .pytest_cache
