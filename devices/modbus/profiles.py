"""Modbus device profiles: a device model's register map, as a YAML file.

A profile is data, like the serial sensor profiles (:mod:`devices.profiles`):
where each value lives, its type, scale, unit and plausible range, which
registers may be written, all taken from the device's data sheet, which the
file names (``datasheet:``). The shipped ones are in ``devices/modbus/profiles/``
and are named by their file name (``profile: sdm120``); a config may also name
a file of its own (``profile: ./meters/my-meter.yaml``).

Loading reads the file with :mod:`rules.yamlsrc` and validates it with
:class:`devices.modbus.spec.ProfileSpec`; every problem is reported at once as
``file:line:col: message`` (:class:`rules.yamlsrc.SourceError`)::

    profile = load_profile("sdm120")                  # a shipped profile
    profile = load_profile("meters/x.yaml", base)     # a file, relative to base
    profile.registers                                 # tuple[Register, ...]

:func:`device_registers` puts a profile and a config's own registers together
(a register of the config replaces the profile's of the same metric) and
checks the whole map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devices.modbus.registers import MAX_READ, Register, overlaps
from devices.modbus.spec import ProfileSpec
from devices.model import InvalidReading, check_identifier
from rules.yamlsrc import LocDict, Mark, Problem, SourceError, load_yaml, locate, locate_key

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
MAX_PROFILE_BYTES = 1024 * 1024  # a register map is a few KiB; more is not a profile


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    datasheet: str
    max_read: int
    registers: tuple[Register, ...]


def names() -> list[str]:
    """The shipped profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def is_path(profile: str) -> bool:
    """Whether ``profile:`` names a file rather than a shipped profile."""
    return profile.endswith((".yaml", ".yml")) or "/" in profile


def profile_path(profile: str, base_dir: Path | None = None) -> Path:
    """The file a ``profile:`` value names; KeyError for an unknown shipped name."""
    if is_path(profile):
        path = Path(profile).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path
    if profile not in names():
        raise KeyError(f"unknown Modbus profile {profile!r}; known: {', '.join(names())}")
    return PROFILE_DIR / f"{profile}.yaml"


def load_profile(profile: str, base_dir: Path | None = None) -> Profile:
    """A shipped profile by name, or a profile file; SourceError lists every problem."""
    path = profile_path(profile, base_dir)
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        problem = Problem(Mark(name, 1, 1), f"cannot read profile: {exc.strerror}")
        raise SourceError([problem]) from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise SourceError([Problem(Mark(name, 1, 1), f"larger than {MAX_PROFILE_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError([Problem(Mark(name, 1, 1), "profile is not UTF-8 text")]) from None
    return parse_profile(text, name, path.stem)


def parse_profile(text: str, file: str, name: str) -> Profile:
    data = load_yaml(text, file)
    origin = Mark(file, 1, 1)
    if not isinstance(data, LocDict):
        raise SourceError([Problem(origin, "a profile is a mapping (datasheet:, registers:)")])
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as exc:
        raise SourceError(validation_problems(exc, data, origin)) from None
    registers = [r.register(metric) for metric, r in spec.registers.items()]
    problems = [
        Problem(locate_key(data, ("registers", metric), origin), message)
        for metric, message in map_problems(registers, spec.max_read)
    ]
    if problems:
        raise SourceError(problems)
    return Profile(name, spec.description, spec.datasheet, spec.max_read, tuple(registers))


def device_registers(
    profile: Profile | None, own: Mapping[str, Register]
) -> tuple[tuple[Register, ...], list[tuple[str, str]]]:
    """A device's map: the profile's registers with ``own`` added or replacing, and its
    problems as (metric, message)."""
    merged = {r.metric: r for r in (profile.registers if profile else ())}
    merged.update(own)
    registers = tuple(merged.values())
    max_read = profile.max_read if profile else MAX_READ
    problems = map_problems(list(registers), max_read)
    if not registers:
        problems.append(("", "no registers: give profile: or registers:"))
    return registers, problems


def map_problems(registers: list[Register], max_read: int) -> list[tuple[str, str]]:
    """What is wrong with a register map, as (metric, message)."""
    problems = []
    for register in registers:
        try:
            check_identifier("metric", register.metric)
        except InvalidReading as exc:
            problems.append((register.metric, str(exc)))
        if register.width > max_read:
            problems.append((register.metric, f"wider than max_read {max_read}"))
    for before, after in overlaps(registers):
        problems.append(
            (after.metric, f"{after.metric} at {after.address} overlaps {before.metric} "
             f"({before.table} {before.address}…{before.end - 1})")
        )  # fmt: skip
    return problems


def validation_problems(exc: ValidationError, data: Any, origin: Mark) -> list[Problem]:
    """A pydantic error list as problems at the positions of the YAML they came from."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        unknown = err["type"] == "extra_forbidden"
        where = (locate_key if unknown else locate)(data, loc, origin)
        message = "unknown key" if unknown else str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required key missing"
        path = ".".join(str(p) for p in loc)
        problems.append(Problem(where, f"{path}: {message}" if path else message))
    return problems
