"""What the verbs share: loading the config named by ``-c FILE``."""

from __future__ import annotations

import argparse
import sys

from gateway.config import LoadedConfig, load_config
from rules.yamlsrc import SourceError


def load_config_or_report(args: argparse.Namespace) -> LoadedConfig | None:
    """The config of ``-c`` (or ``./outpost.yaml``, or the defaults).

    When it is invalid, its errors (``FILE:LINE:COL: …``) go to stderr and the
    result is None; the verb then exits with its own code for an invalid config.
    """
    try:
        return load_config(args.config)
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return None
