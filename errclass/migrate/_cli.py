"""``errclass migrate`` and ``errclass check``: argument parsing only; the work is
imported when a command runs."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    m = subparsers.add_parser(
        "migrate",
        help="rewrite dashboards and rule files for the reason split (dry run by default)",
        description=(
            "Rewrite selectors on METRIC in Grafana dashboards and Prometheus/Mimir/"
            "PrometheusRule/Grafana alerting rule files for the split of --from into "
            "--from plus --split values. Dry run: prints a diff and a summary. "
            "Exit status: 0 nothing to change, 1 changes found, 2 errors."
        ),
    )
    _selection(m, default_mode="preserve")
    m.add_argument("--write", action="store_true", help="apply the changes (all files or none)")
    m.add_argument("--backup", action="store_true", help="with --write: keep FILE.bak copies")
    m.add_argument("--no-diff", action="store_true", help="print only the summary table")
    m.set_defaults(func=run_migrate)
    m.epilog = "With --write, the files are written first and reported after."
    c = subparsers.add_parser(
        "check",
        help="lint: queries and alerts that the reason split changes (exit 1 if any)",
        description=(
            "Find selectors on the old value, ratios whose denominator still counts the "
            "split values, and alerts whose threshold was tuned on the old volume. "
            "Exit status: 0 clean, 1 findings, 2 errors."
        ),
    )
    _selection(c, default_mode="split")
    c.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default); json: one JSON object for CI; github: GitHub Actions "
        "annotations (::error file=...,line=...::...)",
    )
    c.set_defaults(func=run_check)


def _selection(p: argparse.ArgumentParser, default_mode: str) -> None:
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or directories")
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="list every ignored file (by default: one line per kind)",
    )
    p.add_argument(
        "--metric",
        action="append",
        required=True,
        metavar="NAME",
        help="metric name; repeat for several; a value that is not a plain name is a "
        "regex matched against the whole name",
    )
    p.add_argument("--label", default="reason", help="label holding the reason (default: reason)")
    p.add_argument(
        "--from",
        dest="old",
        default="write_failed",
        metavar="VALUE",
        help="the value that was split (default: write_failed)",
    )
    p.add_argument(
        "--split",
        action="append",
        metavar="VALUE",
        help="a value split off from --from; repeat for several (default: client_gone)",
    )
    p.add_argument(
        "--mode",
        choices=("preserve", "split"),
        default=default_mode,
        help=f"preserve: keep matching what matched before; split: real faults only "
        f"(default: {default_mode})",
    )


def _plan(args: argparse.Namespace) -> tuple[Any, list[Any], list[Any]] | None:
    from errclass.migrate._files import plan_paths
    from errclass.migrate._report import rows
    from errclass.migrate._semantics import Selection

    try:
        sel = Selection(
            tuple(args.metric),
            label=args.label,
            old=args.old,
            split=tuple(args.split or ("client_gone",)),
            mode=args.mode,
        )
    except ValueError as e:
        print(f"errclass: {e}", file=sys.stderr)
        return None
    with collector_paused():
        results = plan_paths(args.paths, sel)
    return sel, results, rows(results)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Planning allocates a few objects per line (the composed YAML, parse trees,
    results) and no reference cycles: the cyclic garbage collector would traverse them
    again and again and free nothing, a tenth of the time on a large rule file. So it
    waits until planning is done (as msgpack advises for unpacking large data).

    Only here, in the command, which owns its process: the collector is process-wide,
    and a library call (``plan_paths``) must not switch it off under an application's
    other threads. An application that wants the same speed can wrap its call in this.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _errors(results: list[Any]) -> bool:
    bad = [r for r in results if r.error]
    for r in bad:
        print(f"errclass: {r.path}: {r.error}", file=sys.stderr)
    return bool(bad)


class _Out:
    """The report on stdout. A reader that leaves early (``| head -1``) ends it quietly,
    as well-behaved CLIs do: everything else has happened before the report."""

    def __init__(self) -> None:
        self.gone = False

    def write(self, text: str) -> None:
        if self.gone or not text:
            return
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            self.gone = True
            # Python flushes stdout once more at exit: point it at /dev/null (the recipe
            # of Python's signal docs) so that flush fails nowhere.
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, sys.stdout.fileno())
            finally:
                os.close(null)


def run_migrate(args: argparse.Namespace) -> int:
    from errclass.migrate._files import WriteError, write_all
    from errclass.migrate._report import diff, needs_attention, summary, table

    if args.backup and not args.write:
        print("errclass: --backup only makes sense with --write", file=sys.stderr)
        return 2
    planned = _plan(args)
    if planned is None:
        return 2
    _, results, found = planned
    failed = _errors(results)
    written: list[Path] = []
    if failed and args.write:
        print("errclass: nothing written because of the errors above", file=sys.stderr)
    elif args.write:  # before anything is reported: what is written never waits on stdout
        try:
            written = write_all(results, backup=args.backup)
        except (WriteError, OSError) as e:
            print(f"errclass: {e}", file=sys.stderr)
            return 2
    out = _Out()
    if not args.no_diff:
        out.write(diff(results))
    out.write(table(found, args.verbose))
    out.write(summary(results, found))
    if failed:
        return 2
    if args.write:
        out.write(f"wrote {len(written)} file(s)\n")
    return 1 if needs_attention(found) else 0


def run_check(args: argparse.Namespace) -> int:
    from errclass.migrate._report import (
        check_github,
        check_json,
        check_report,
        needs_attention,
        summary,
    )

    planned = _plan(args)
    if planned is None:
        return 2
    sel, results, found = planned
    out = _Out()
    if args.format == "json":
        out.write(check_json(results, found, sel))
    elif args.format == "github":
        out.write(check_github(found, sel))
        out.write(summary(results, found))
    else:
        out.write(check_report(found, sel, args.verbose))
        out.write(summary(results, found))
    if _errors(results):
        return 2
    return 1 if needs_attention(found) else 0
