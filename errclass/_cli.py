"""The ``errclass`` command: each subcommand lives in its own module and
registers itself here; heavy imports happen only when a subcommand runs."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# Modules that define ``register(subparsers)``; each sets ``func`` on its parser.
_COMMANDS = (
    "errclass._demo",
    "errclass.monitoring._cli",
    "errclass.migrate._cli",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="errclass",
        description="Classify streaming outcomes; render and migrate dashboards and alert rules.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("errclass"):
                raise
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
