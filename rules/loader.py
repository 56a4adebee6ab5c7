"""Rule files: YAML text → a checked :class:`RuleSet`, or *every* problem found.

Like Prometheus ``rulefmt``, the loader does not stop at the first error: it
checks every rule of every file and raises one :class:`SourceError` listing all
problems as ``file:line:col: message`` — unknown keys (with a "did you mean"),
bad durations, expression errors (pointing *inside* the expression), bad globs
and topic filters, unknown severities, duplicate rule names across files.

The caller does the I/O and passes ``(filename, text)`` pairs; the filename is
only used in messages.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import replace

from rules.compiler import Compiled, compile_condition
from rules.durations import MINUTE, DurationError, parse_duration
from rules.lexer import ExprError
from rules.matching import glob_problem, topic_filter_problem
from rules.model import SEVERITIES, CommandAction, Match, Rule, RuleSet, Setting, fingerprint
from rules.state import Timing
from rules.template import Template, TemplateError, parse_template
from rules.yamlsrc import LocDict, LocList, Mark, Problem, SourceError, load_yaml

TOP_KEYS = ("rules",)
RULE_KEYS = (
    "name",
    "description",
    "match",
    "when",
    "clear",
    "for",
    "keep_firing_for",
    "repeat",
    "severity",
    "message",
    "labels",
    "actions",
    "on_resolved",
    "stale_after",
)
MATCH_KEYS = ("metric", "device", "tags", "topic")
ACTION_KEYS = ("command",)
COMMAND_KEYS = ("device", "set")
DURATION_KEYS = ("for", "keep_firing_for", "repeat", "stale_after")

DEFAULT_STALE_AFTER = 5 * MINUTE
DEFAULT_SEVERITY = "warning"
DEFAULT_MESSAGE = "{rule} is {state} on {device} (value {value})"
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
_TARGET_TEMPLATE_FIELDS = ("device", "rule", "metric", "severity")


def load_rules(sources: Iterable[tuple[str, str]]) -> RuleSet:
    """Load and check every ``(filename, text)``; raise :class:`SourceError` with all problems."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    seen: dict[str, Mark] = {}
    for file, text in sources:
        rules.extend(_load_file(file, text, problems, seen))
    if problems:
        raise SourceError(problems)
    return RuleSet(tuple(rules))


def check_rules(sources: Iterable[tuple[str, str]]) -> list[Problem]:
    """Every problem in the given files (empty when they load)."""
    try:
        load_rules(sources)
    except SourceError as exc:
        return exc.problems
    return []


def _load_file(file: str, text: str, problems: list[Problem], seen: dict[str, Mark]) -> list[Rule]:
    try:
        doc = load_yaml(text, file)
    except SourceError as exc:
        problems.extend(exc.problems)
        return []
    if doc is None:
        return []
    if not isinstance(doc, LocDict):
        problems.append(Problem(Mark(file, 1, 1), "a rule file is a mapping with a 'rules:' list"))
        return []
    _unknown_keys(doc, TOP_KEYS, "rule file", problems)
    items = doc.get("rules")
    if items is None:
        return []
    if not isinstance(items, LocList):
        problems.append(Problem(doc.locs["rules"], "'rules' must be a list of rules"))
        return []
    out: list[Rule] = []
    lines = text.splitlines()
    for i, item in enumerate(items):
        if not isinstance(item, LocDict):
            problems.append(Problem(items.locs[i], "each rule must be a mapping"))
            continue
        rule = _RuleReader(item, lines, problems, seen).read()
        if rule is not None:
            out.append(rule)
    return out


def _unknown_keys(d: LocDict, known: tuple[str, ...], what: str, problems: list[Problem]) -> None:
    for key in d:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            problems.append(Problem(d.key_locs[key], f"unknown key {key!r} in {what}{hint}"))


def expression_mark(lines: list[str], start: Mark, expr: str, pos: int) -> Mark:
    """Map an offset inside an expression back to the file, through YAML quoting and folding.

    Folding and quoting only change whitespace and add quote or block
    indicators, so the non-space characters of ``expr`` appear in the source
    in the same order: walk both in step. If they ever disagree (escapes in a
    double-quoted scalar), fall back to the start of the value.
    """
    line, col = start.line - 1, start.col - 1
    if line >= len(lines):
        return start
    # The first non-space character of the expression; skip quote/block indicators.
    k = 0
    while k < len(expr) and expr[k].isspace():
        k += 1
    if k >= len(expr):
        return start
    first = True
    while line < len(lines):
        text = lines[line]
        while col < len(text):
            ch = text[col]
            if ch.isspace():
                col += 1
                continue
            if ch == expr[k]:
                if k >= pos:
                    return Mark(start.file, line + 1, col + 1)
                first = False
                k += 1
                while k < len(expr) and expr[k].isspace():
                    if k >= pos:
                        return Mark(start.file, line + 1, col + 2)
                    k += 1
                col += 1
                if k >= len(expr):
                    return Mark(start.file, line + 1, col + 1)
                continue
            if first and ch in "\"'|>-+0123456789":
                col += 1
                continue
            return start
        line, col = line + 1, 0
    return start


class _RuleReader:
    """Reads one rule mapping, appending problems; returns None if anything was wrong."""

    def __init__(
        self, d: LocDict, lines: list[str], problems: list[Problem], seen: dict[str, Mark]
    ) -> None:
        self.seen = seen
        self.d = d
        self.lines = lines
        self.problems = problems

    def fail(self, mark: Mark, message: str) -> None:
        self.problems.append(Problem(mark, message))

    def read(self) -> Rule | None:
        d = self.d
        before = len(self.problems)
        _unknown_keys(d, RULE_KEYS, "rule", self.problems)
        name = self.name()
        durations = {key: self.duration(key) for key in DURATION_KEYS}
        stale_after = durations["stale_after"]
        stale = DEFAULT_STALE_AFTER if stale_after is None else stale_after
        match = self.match()
        when = self.condition("when", stale, required=True)
        clear = self.condition("clear", stale, required=False)
        severity = self.text("severity", DEFAULT_SEVERITY)
        if severity not in SEVERITIES:
            self.fail(
                d.locs.get("severity", d.mark),
                f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})",
            )
        message = self.template("message", DEFAULT_MESSAGE)
        labels = self.labels()
        actions = self.actions("actions")
        on_resolved = self.actions("on_resolved")
        description = self.text("description", "")
        if len(self.problems) != before or when is None or match is None or message is None:
            return None
        rule = Rule(
            name=name,
            match=match,
            when=when,
            clear=clear,
            timing=Timing(
                durations["for"] or 0, durations["keep_firing_for"] or 0, durations["repeat"] or 0
            ),
            severity=severity,
            message=message,
            labels=labels,
            actions=actions,
            on_resolved=on_resolved,
            stale_after=stale,
            description=description,
            mark=d.mark,
        )
        return replace(rule, fingerprint=fingerprint(rule))

    def name(self) -> str:
        name = self.d.get("name")
        if name is None:
            self.fail(self.d.mark, "rule without 'name'")
            return ""
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            self.fail(
                self.d.locs["name"],
                f"bad rule name {name!r}: letters, digits and _ . : - "
                "only (it becomes an MQTT topic level)",
            )
            return ""
        mark = self.d.locs["name"]
        if (first := self.seen.get(name)) is not None:
            self.fail(mark, f"duplicate rule name {name!r} (first defined at {first})")
        else:
            self.seen[name] = mark
        return name

    def text(self, key: str, default: str, d: LocDict | None = None) -> str:
        d = self.d if d is None else d
        value = d.get(key, default)
        if not isinstance(value, str):
            self.fail(d.locs[key], f"'{key}' must be a string")
            return default
        return value

    def duration(self, key: str) -> int | None:
        if key not in self.d:
            return None
        raw = self.d[key]
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            self.fail(self.d.locs[key], f"'{key}' must be a duration such as 30s or 5m")
            return None
        try:
            ns = parse_duration(str(raw))
        except DurationError as exc:
            self.fail(self.d.locs[key], f"'{key}': {exc}")
            return None
        if key == "stale_after" and ns == 0:
            self.fail(self.d.locs[key], "'stale_after' must be longer than zero")
            return None
        return ns

    def match(self) -> Match | None:
        m = self.d.get("match")
        if m is None:
            self.fail(self.d.mark, "rule without 'match' (e.g. match: {metric: temperature})")
            return None
        if not isinstance(m, LocDict):
            self.fail(self.d.locs["match"], "'match' must be a mapping")
            return None
        _unknown_keys(m, MATCH_KEYS, "match", self.problems)
        metric = self.opt_str(m, "metric")
        device = self.opt_str(m, "device")
        if device is not None and (problem := glob_problem(device)):
            self.fail(m.locs["device"], problem)
        topic = self.opt_str(m, "topic")
        if topic is not None and (problem := topic_filter_problem(topic)):
            self.fail(m.locs["topic"], problem)
        tags = self.str_map(m, "tags")
        return Match(metric, device, tags, topic)

    def opt_str(self, d: LocDict, key: str) -> str | None:
        value = d.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.fail(d.locs[key], f"'{key}' must be a non-empty string")
            return None
        return value

    def str_map(self, d: LocDict, key: str) -> tuple[tuple[str, str], ...]:
        value = d.get(key)
        if value is None:
            return ()
        if not isinstance(value, LocDict):
            self.fail(d.locs[key], f"'{key}' must be a mapping of names to strings")
            return ()
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                self.fail(value.locs[k], f"'{key}.{k}' must be a string")
                continue
            out.append((k, str(v)))
        return tuple(sorted(out))

    def labels(self) -> tuple[tuple[str, str], ...]:
        return self.str_map(self.d, "labels")

    def condition(self, key: str, stale_after: int, required: bool) -> Compiled | None:
        if key not in self.d:
            if required:
                self.fail(self.d.mark, f"rule without '{key}'")
            return None
        text = self.d[key]
        mark = self.d.locs[key]
        if isinstance(text, bool):  # `when: true` in YAML is the constant condition
            text = "true" if text else "false"
        if not isinstance(text, str):
            self.fail(mark, f"'{key}' must be an expression (a string), got {text!r}")
            return None
        try:
            return compile_condition(text, stale_after)
        except ExprError as exc:
            where = expression_mark(self.lines, mark, text, exc.pos)
            self.fail(where, f"{key}: {exc.message}")
        except DurationError as exc:
            self.fail(mark, f"{key}: {exc}")
        return None

    def template(self, key: str, default: str) -> Template | None:
        source = self.text(key, default)
        try:
            return parse_template(source)
        except TemplateError as exc:
            self.fail(self.d.locs.get(key, self.d.mark), f"'{key}': {exc}")
            return None

    def actions(self, key: str) -> tuple[CommandAction, ...]:
        items = self.d.get(key)
        if items is None:
            return ()
        if not isinstance(items, LocList):
            self.fail(self.d.locs[key], f"'{key}' must be a list of actions")
            return ()
        out: list[CommandAction] = []
        for i, item in enumerate(items):
            if not isinstance(item, LocDict) or "command" not in item:
                self.fail(
                    items.locs[i],
                    f"each entry of '{key}' must be 'command: {{device: ..., set: {{...}}}}'",
                )
                continue
            if (action := self.command(item, key)) is not None:
                out.append(action)
        return tuple(out)

    def command(self, item: LocDict, key: str) -> CommandAction | None:
        _unknown_keys(item, ACTION_KEYS, f"{key} entry", self.problems)
        cmd = item["command"]
        if not isinstance(cmd, LocDict):
            self.fail(item.locs["command"], "'command' must be a mapping with 'device' and 'set'")
            return None
        _unknown_keys(cmd, COMMAND_KEYS, "command", self.problems)
        target = cmd.get("device")
        settings = cmd.get("set")
        if not isinstance(target, str) or not target:
            self.fail(cmd.locs.get("device", cmd.mark), "'command' needs a 'device' (a string)")
            return None
        try:
            tpl = parse_template(target)
        except TemplateError as exc:
            self.fail(cmd.locs["device"], f"command device: {exc}")
            return None
        for _, field, _, _ in tpl.parts:
            if field and field not in _TARGET_TEMPLATE_FIELDS and not field.startswith("tags."):
                self.fail(cmd.locs["device"], f"command device cannot use {{{field}}}")
                return None
        if not isinstance(settings, LocDict) or not settings:
            self.fail(cmd.locs.get("set", cmd.mark), "'command' needs 'set': a non-empty mapping")
            return None
        pairs: list[tuple[str, Setting]] = []
        marks: list[Mark] = []
        for k, v in settings.items():
            if not isinstance(v, str | int | float | bool):
                self.fail(
                    settings.locs[k], f"command value '{k}' must be a number, string or true/false"
                )
                continue
            pairs.append((k, v))
            marks.append(settings.key_locs.get(k, settings.locs[k]))
        return CommandAction(tpl, tuple(pairs), cmd.locs["device"], tuple(marks))
