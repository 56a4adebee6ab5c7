"""Outpost's rules engine, a pure library: no I/O, no asyncio, time is an argument.

Modules, from text to events::

    yamlsrc    YAML with file:line:col marks (shared with gateway config)
    loader     rule files → RuleSet, collecting every problem     (uses lexer,
    lexer      expression text → tokens (durations are tokens)      parser,
    parser     tokens → expression tree (Pratt)                     compiler,
    compiler   tree → type-checked closures                         template)
    closures   the closures of a compiled expression
    context    what one evaluation sees; Undefined
    fused      one closure for the common shapes (`avg(5m) > k or value > k`)
    template   message templates
    matching   which rules can match a reading (index)
    points     the point store of a series, shared by its windows (bounded)
    windows    incremental sliding windows per (device, metric)
    state      AlertState / AlertRecord and the pure transition functions
    engine     Engine: observe(reading, now), tick(now), next_deadline(), …
    runtime    the engine's per-rule runtimes, plans and absent() watches
    deadlines  the engine's deadline heap and absent() watches, what is due
    outputs    alert events and command requests of transitions
    carryover  journal export, restore, reload carry-over, counters
    snapshot   StoredAlert / StoredSeries (journal records), ReloadResult
    events     AlertEvent (§5 payload), CommandRequest
    replay     readings → events on the readings' own clock
    testfile   ``rules test`` files: format and loader
    ruletest   ``rules test`` runner and its report
    schema     JSON Schemas of rule files and alert events
    report     the HTML page of ``rules replay --html``

Errors: :class:`SourceError` (a file, with every :class:`Problem` at
``file:line:col``) from loading; :class:`ExprError` (an expression, with an
offset) from :func:`compile_condition`; nothing else escapes evaluation —
undefined values are counted, not raised.
"""

from rules.compiler import Compiled, compile_condition
from rules.engine import Engine
from rules.events import AlertEvent, CommandRequest, Output, alert_event_schema, rfc3339
from rules.lexer import ExprError
from rules.loader import check_rules, load_rules
from rules.model import ReadingLike, Rule, RuleSet
from rules.replay import Sample, replay
from rules.schema import rule_file_schema
from rules.snapshot import ReloadResult, StoredAlert, StoredSeries
from rules.state import AlertRecord, AlertState, Timing, Transition, advance, evaluate
from rules.yamlsrc import Mark, Problem, SourceError

__all__ = [
    "AlertEvent",
    "AlertRecord",
    "AlertState",
    "CommandRequest",
    "Compiled",
    "Engine",
    "ExprError",
    "Mark",
    "Output",
    "Problem",
    "ReadingLike",
    "ReloadResult",
    "Rule",
    "RuleSet",
    "Sample",
    "SourceError",
    "StoredAlert",
    "StoredSeries",
    "Timing",
    "Transition",
    "advance",
    "alert_event_schema",
    "check_rules",
    "compile_condition",
    "evaluate",
    "load_rules",
    "replay",
    "rfc3339",
    "rule_file_schema",
]
