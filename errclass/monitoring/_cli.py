"""``errclass render``: dashboards and alert rules from flags or a config file."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

# Flags that set one config key: (flag, dotted key, type, help).
_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--name", "name", str, "file and group name prefix (default errclass)"),
    ("--metric", "metric", str, "counter name (default errclass_outcomes_total)"),
    ("--reason-label", "reason_label", str, "label holding the reason (default reason)"),
    ("--producer-label", "producer_label", str, "producer label, '' if none (default producer)"),
    ("--selector", "selector", str, 'matchers added to every query, e.g. job="asset"'),
    ("--objective", "slo.objective", float, "SLO objective, e.g. 0.999"),
    ("--period", "slo.period", str, "SLO period (default 30d)"),
    ("--alert-prefix", "alerts.prefix", str, "CamelCase alert name prefix (default Errclass)"),
    ("--runbook-url", "alerts.runbook_url", str, "pattern with {alert}/{alert_lower}/{name}"),
    ("--dashboard-uid", "dashboard.uid", str, "stable Grafana dashboard uid"),
    ("--dashboard-title", "dashboard.title", str, "Grafana dashboard title"),
)
_LISTS: tuple[tuple[str, str, str], ...] = (
    ("--aggregate", "aggregation_labels", "labels the rules keep, comma-separated"),
    ("--error-reasons", "error_reasons", "reasons that burn the budget, comma-separated"),
    ("--excluded-reasons", "excluded_reasons", "reasons out of both ratio sides ('' for none)"),
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "render",
        help="render Grafana dashboards and Prometheus/Mimir/Grafana alert rules",
        description="Render the dashboards and alert rules for the client_gone/write_failed "
        "split. Flags override the config file; with neither, the default metric "
        "errclass_outcomes_total{producer, reason} is rendered.",
    )
    p.add_argument("--out", metavar="DIR", help="writes DIR/grafana and DIR/alerts (required)")
    p.add_argument("--config", metavar="FILE", help="a .toml or .yaml config (see README)")
    for flag, _, tp, text in _FLAGS:
        metavar = "LABEL" if flag.endswith("-label") else "NAME" if flag == "--metric" else None
        p.add_argument(flag, type=tp, help=text, metavar=metavar)
    for flag, _, text in _LISTS:
        p.add_argument(flag, metavar="A,B", help=text)
    p.add_argument(
        "--reason",
        action="append",
        default=[],
        metavar="REASON=V1,V2",
        help="label value(s) of a reason, e.g. ok=on_demand_created,file_existed (repeatable)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if DIR differs from what would be rendered",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective config (YAML, loadable with --config) and exit",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import ConfigError, from_mapping, load, render, to_data

    overrides = _overrides(args)
    if overrides is None:
        return 2
    try:
        cfg = load(args.config, overrides) if args.config else from_mapping(overrides=overrides)
    except ConfigError as e:
        print(f"errclass render: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_data(cfg), sort_keys=False), end="")
        return 0
    if not args.out:
        print("errclass render: --out DIR is required", file=sys.stderr)
        return 2
    files = render(cfg)
    out = Path(args.out)
    return _check(files, out) if args.check else _write(files, out)


def _overrides(args: argparse.Namespace) -> dict[str, tuple[Any, str]] | None:
    """The config keys the flags set, each with its flag; None (reported) if bad."""
    overrides: dict[str, tuple[Any, str]] = {}
    for flag, key, _, _ in _FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            overrides[key] = (value, flag)
    for flag, key, _ in _LISTS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            overrides[key] = ([v.strip() for v in value.split(",") if v.strip()], flag)
    reasons: dict[str, list[str]] = {}
    for item in args.reason:
        reason, sep, values = item.partition("=")
        if not sep or not values.strip():
            print(
                f"errclass render: --reason: expected REASON=V1,V2, got {item!r}", file=sys.stderr
            )
            return None
        reasons[reason.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    for reason, values in reasons.items():
        overrides[f"reasons.{reason}"] = (values, "--reason")
    return overrides


def _check(files: dict[str, str], out: Path) -> int:
    stale = [
        rel
        for rel, text in files.items()
        if not (out / rel).is_file() or (out / rel).read_text(encoding="utf-8") != text
    ]
    for rel in stale:
        print(f"errclass render: {out / rel} is out of date", file=sys.stderr)
    return 1 if stale else 0


def _write(files: dict[str, str], out: Path) -> int:
    from . import write

    try:
        written = write(files, out)
    except OSError as e:
        print(f"errclass render: cannot write under {out}: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{len(files)} files under {out} already up to date")
    return 0
