"""The ``errclass`` command: each subcommand lives in its own module and
registers itself here; heavy imports happen only when a subcommand runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that define ``register(subparsers)``; each sets ``func`` on its parser. They
# import nothing optional at import time, so every command is always listed.
_COMMANDS = (
    "errclass._demo",
    "errclass.monitoring._cli",
    "errclass.migrate._cli",
)

# What the ``cli`` extra installs: module -> distribution. Commands import these when
# they run; without them, the command says what to install (as httpx does).
_CLI_EXTRA = {"yaml": "PyYAML", "promql_parser": "promql-parser"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="errclass",
        description="Classify streaming outcomes; render and migrate dashboards and alert rules.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        importlib.import_module(module).register(sub)
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except ModuleNotFoundError as e:
        missing = (e.name or "").partition(".")[0]
        if missing not in _CLI_EXTRA:
            raise
        print(
            f"errclass {args.command}: this command needs {_CLI_EXTRA[missing]} "
            f"(module {missing!r}), which is not installed. Install the cli extra:\n\n"
            "    pip install 'errclass[cli]'",
            file=sys.stderr,
        )
        return 2
    return result
