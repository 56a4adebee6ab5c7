"""What an API request carries, read for the handlers: anything malformed is a 400 that says why.

The bounds keep every value inside what the layers behind the API handle (a
64-bit journal column, a float, the JSON of an MQTT payload):

- a JSON body is at most :data:`MAX_BODY` bytes (aiohttp answers 413 beyond),
  arrives within ``http.idle_timeout`` (408 otherwise), is UTF-8, an object,
  nested at most :data:`MAX_DEPTH` deep, with finite numbers, integers of at most
  :data:`MAX_DIGITS` digits and no unpaired surrogate (``"\\ud800"``) in its text;
- a number in a query (``?limit=``) or a path (``/silences/ID``) is plain ASCII
  digits; a duration (``?since=``) is one the duration parser reads.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from aiohttp import web

from rules import durations

MAX_BODY = 64 * 1024
MAX_DEPTH = 16
MAX_DIGITS = 18  # every such integer fits in 64 bits
_MAX_TEXT = 64  # characters of a number or duration in a query or path


def _error_text(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


class BadRequest(web.HTTPBadRequest):
    """A 400 whose JSON body says what is wrong with the request."""

    def __init__(self, message: str) -> None:
        super().__init__(text=_error_text(message), content_type="application/json")


def _whole_number(text: str) -> int | None:
    """``text`` as a whole number if it is ASCII digits only, else None."""
    if not text or len(text) > _MAX_TEXT or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def query_limit(request: web.Request, default: int, cap: int) -> int:
    """``?limit=N``, at most ``cap``."""
    text = request.query.get("limit")
    if text is None:
        return default
    number = _whole_number(text)
    if number is None or number < 1:
        raise BadRequest(f"limit must be a whole number, 1 or more (beyond {cap}, {cap})")
    return min(number, cap)


def query_since(request: web.Request) -> int | None:
    """``?since=1h`` as the Unix time in ns it stands for (0 for longer than time itself)."""
    text = request.query.get("since")
    if text is None:
        return None
    if len(text) > _MAX_TEXT:
        raise BadRequest("since: not a duration (use e.g. 30s, 15m, 1h, 7d)")
    try:
        ago = durations.parse_duration(text, longest=None)
    except ValueError as exc:
        raise BadRequest(f"since: {exc}") from None
    return max(0, time.time_ns() - ago)


def path_id(request: web.Request, name: str, what: str) -> int:
    """A numeric id from the path (``/silences/12``)."""
    number = _whole_number(request.match_info[name])
    if number is None or number >= 2**63:
        raise BadRequest(f"{what} ids are whole numbers")
    return number


async def json_object(request: web.Request, timeout: float) -> dict[str, Any]:
    """The request's JSON object body, checked as the module says."""
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=_error_text(f"the body did not arrive within {timeout:g} s (http.idle_timeout)"),
            content_type="application/json") from None
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                          parse_float=_finite_float, parse_int=_bounded_int)
    except RecursionError:
        raise BadRequest(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError:
        raise BadRequest("the body must be UTF-8 JSON") from None
    except ValueError as exc:
        raise BadRequest(f"the body must be a JSON object: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    _check_tree(body)
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large a number")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"integers have at most {MAX_DIGITS} digits")
    return int(text)


def _check_tree(body: Any) -> None:
    """Depth and text of a parsed body (without recursion: the depth is what is checked)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise BadRequest(f"the body is nested more than {MAX_DEPTH} levels deep")
            if isinstance(node, dict):
                stack.extend((key, depth) for key in node)
                stack.extend((value, depth + 1) for value in node.values())
            else:
                stack.extend((item, depth + 1) for item in node)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the body holds an unpaired surrogate (\\ud800-\\udfff)") from None
