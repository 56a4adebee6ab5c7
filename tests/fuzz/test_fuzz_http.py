"""Every route of the real gateway under generated requests (hypothesis).

One gateway process with a real broker and a real influxd; each example is one
request on a fresh connection: a method (the routes' own, others, made-up ones),
a path (every route, its segments replaced or extended with arbitrary text,
dot segments, percent-encoded bytes), a query string (the routes' parameters and
others, with huge integers, huge or malformed durations, arbitrary bytes), a body
(JSON nested up to 100,000 deep, huge and non-finite numbers, unpaired
surrogates, the shapes the routes expect with wrong types, arbitrary bytes) and
headers (the right token or not, any content type). Every request must be
answered, never with a 5xx; afterwards the gateway still serves /api/v1/status.

OUTPOST_FUZZ_EXAMPLES sets the number of examples (default 150; the nightly run
uses thousands).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests import rawhttp
from tests.gateway.harness import GatewayProcess
from tests.http.conftest import TOKEN, start_gateway
from tests.services import InfluxDB, Mosquitto

EXAMPLES = int(os.environ.get("OUTPOST_FUZZ_EXAMPLES", "150"))

# Every route the gateway serves (gateway/http/server.py), as method and path.
ROUTES = [
    ("GET", "/"), ("GET", "/static/app.js"), ("GET", "/static/style.css"),
    ("GET", "/static/icon.svg"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
    ("GET", "/api/v1/status"), ("GET", "/api/v1/devices"), ("GET", "/api/v1/readings"),
    ("GET", "/api/v1/series"), ("GET", "/api/v1/alerts"), ("GET", "/api/v1/rules"),
    ("GET", "/api/v1/events"), ("GET", "/api/v1/commands"), ("GET", "/api/v1/silences"),
    ("GET", "/api/v1/stream"), ("POST", "/api/v1/commands"), ("POST", "/api/v1/silences"),
    ("DELETE", "/api/v1/silences/1"), ("POST", "/api/v1/rules/reload"),
]
PARAMETERS = ["limit", "since", "trace", "device", "metric", "spark"]

# --- pieces of text --------------------------------------------------------------------------

digits = st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n)
numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    digits,
    st.floats().map(repr),
    st.sampled_from(["0", "-1", "1e999", "-1e999", "NaN", "Infinity", "1_000", " 5 ", "٣",
                     "0x10", "1.5", "00000000000000000000001"]),
)
durations = st.one_of(
    st.builds(lambda n, unit: f"{n}{unit}", st.one_of(st.integers(0, 10**6), digits),
              st.sampled_from(["ns", "us", "ms", "s", "m", "h", "d", "w", "y", ""])),
    st.sampled_from(["1h30m", "99999999999999999999999999d", "1e400s", "-5m", "0", "inf",
                     "1.5.5s", "5 m", "m", "1" * 70 + "s"]),
)
texts = st.text(max_size=60)
values = st.one_of(numbers, durations, texts)


def encoded(text: str) -> str:
    return quote(text, safe="", errors="surrogatepass")


raw_bytes = st.binary(max_size=40).map(lambda b: quote_from_bytes(b, safe=""))
query_values = st.one_of(values.map(encoded), raw_bytes)
query_keys = st.one_of(st.sampled_from(PARAMETERS), texts.map(encoded))
queries = st.lists(st.tuples(query_keys, query_values), max_size=5).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))

segments = st.one_of(
    values.map(encoded), raw_bytes,
    st.sampled_from(["..", ".", "%2e%2e", "%2F", "%00", "%ff", "", "1", "-1", "0",
                     "9223372036854775808", "99999999999999999999999", "%C0%AE"]),
)


@st.composite
def paths(draw: st.DrawFn) -> tuple[str, str]:
    """(the route's method, a path on or around one route)."""
    method, path = draw(st.sampled_from(ROUTES))
    parts = path.split("/")
    how = draw(st.sampled_from(["as is", "replace", "extend", "anywhere"]))
    if how == "replace" and len(parts) > 1:
        parts[draw(st.integers(1, len(parts) - 1))] = draw(segments)
    elif how == "extend":
        parts.extend(draw(st.lists(segments, min_size=1, max_size=3)))
    elif how == "anywhere":
        parts = ["", *draw(st.lists(segments, max_size=4))]
    return method, "/".join(parts) or "/"


# --- bodies ----------------------------------------------------------------------------------

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts,
                        st.integers(min_value=10**18, max_value=10**300))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=20)


def _nested(depth: int, shape: str) -> str:
    opener, closer = ("[", "]") if shape == "list" else ('{"a":', "}")
    return opener * depth + "1" + closer * depth


expected_shapes = st.one_of(
    st.fixed_dictionaries({"device": st.one_of(st.just("fan-1"), json_values),
                           "set": st.one_of(
                               st.fixed_dictionaries({"speed": json_values}), json_values)}),
    st.fixed_dictionaries({"rule": json_values, "device": json_values,
                           "for": st.one_of(durations, json_values), "comment": json_values}),
)
bodies = st.one_of(
    st.none(),
    expected_shapes.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(_nested, st.integers(1, 100_000), st.sampled_from(["list", "dict"])).map(
        str.encode),
    st.builds(lambda n: f'{{"device": "fan-1", "set": {{"speed": {"9" * n}}}}}'.encode(),
              st.integers(1, 6000)),
    st.sampled_from([b'{"for": 1e999}', b'{"for": NaN, "rule": "x"}', b'{"for": "1e400s"}',
                     b'{"device": "fan-1", "set": {"speed": Infinity}}', b'"\\ud800"',
                     b'{"device": "\\ud800", "set": {"speed": 1}}', b"\xff\xfe", b"",
                     b'{"for": "99999999999999999999d", "rule": "x"}',
                     b'{"for": 99999999999999999999, "rule": "x"}']),
    st.binary(max_size=200),
)

other_methods = st.one_of(
    st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12),
)
other_authorizations = st.one_of(
    st.just(f"Bearer {TOKEN}x"), st.none(),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40))
content_types = st.one_of(st.none(), st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", "application/json; charset=latin-1"]))

Request = tuple[str, str, dict[str, str], bytes | None]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Mostly what reaches a handler (the route's method, the token, its parameters), so
    that the handlers' own checks are what the fuzzing hits; sometimes anything."""
    route_method, path = draw(paths())
    method = route_method if draw(st.integers(0, 3)) else draw(other_methods)
    auth = f"Bearer {TOKEN}" if draw(st.integers(0, 3)) else draw(other_authorizations)
    headers = {"Authorization": auth} if auth is not None else {}
    content_type = draw(content_types)
    if content_type is not None:
        headers["Content-Type"] = content_type
    query = draw(queries)
    body = draw(bodies) if method not in ("GET", "HEAD") or draw(st.booleans()) else None
    return method, f"{path}?{query}" if query else path, headers, body


AS_OWNER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
DEEP = 100_000


@pytest.fixture(scope="module")
def gateway(shared_mosquitto: Mosquitto, influxdb: InfluxDB,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, int]]:
    db = f"fuzz_{uuid.uuid4().hex[:10]}"
    influxdb.create_database(db)
    process, config = start_gateway(tmp_path_factory.mktemp("fuzz"), shared_mosquitto,
                                    influxdb, db)
    try:
        yield process, int(config["http"]["listen"].rpartition(":")[2])
    finally:
        assert process.stop() == 0, process.log()
        influxdb.drop_database(db)


@pytest.mark.timeout(120 + EXAMPLES // 5)  # examples take 10-200 ms on a busy machine
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=requests())
# The attacks found by hand, always tried whatever the example count:
@example(request=("GET", "/api/v1/events?since=99999999999999999999d", {}, None))
@example(request=("GET", f"/api/v1/events?since={'9' * 400}s", {}, None))
@example(request=("GET", f"/api/v1/events?limit={'9' * 5000}", {}, None))
@example(request=("DELETE", "/api/v1/silences/99999999999999999999", AS_OWNER, None))
@example(request=("POST", "/api/v1/commands", AS_OWNER, ("[" * DEEP + "]" * DEEP).encode()))
@example(request=("POST", "/api/v1/silences", AS_OWNER, ('{"a":' * DEEP + "1" + "}" * DEEP)
                  .encode()))
@example(request=("POST", "/api/v1/commands", AS_OWNER,
                  b'{"device": "fan-1", "set": {"speed": ' + b"9" * 5000 + b"}}"))
@example(request=("POST", "/api/v1/commands", AS_OWNER,
                  b'{"device": "fan-1", "set": {"speed": ' + b"9" * 400 + b"}}"))
@example(request=("POST", "/api/v1/silences", AS_OWNER, b'{"for": 1e300, "rule": "x"}'))
@example(request=("POST", "/api/v1/silences", AS_OWNER, b'{"for": "9999999999999d"}'))
@example(request=("POST", "/api/v1/silences", AS_OWNER, b'{"for": NaN}'))
@example(request=("POST", "/api/v1/silences", AS_OWNER, b'{"for": "1h", "rule": "\\ud800"}'))
def test_no_request_gets_a_5xx_or_a_dropped_connection(
        gateway: tuple[GatewayProcess, int], request: Request) -> None:
    process, port = gateway
    method, target, headers, body = request
    answer = rawhttp.request(port, method, target, headers=headers, body=body)  # raises if dropped
    assert answer.status < 500, (method, target[:200], body and body[:200], answer)
    assert process.proc is not None and process.proc.poll() is None


def test_the_gateway_still_serves_after_the_fuzzing(gateway: tuple[GatewayProcess, int]) -> None:
    process, port = gateway
    answer = rawhttp.request(port, "GET", "/api/v1/status")
    assert answer.status == 200
    assert json.loads(answer.body)["mqtt_connected"] is True
    assert "Traceback" not in process.log(), process.log()[-5000:]
