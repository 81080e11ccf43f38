"""``errclass demo``: the seed's catch-up incident, replayed on loopback, before and after.

An asset peer (Starlette under uvicorn, in a subprocess) streams subtree bodies
to a block validator that fetches each block's subtrees in parallel; one fetch
per block fails with a 500. A real Prometheus scrapes both and evaluates the
shipped alert rules, time-compressed. Three phases: *before* (TaskGroup cascade,
hand-written counting), *producer fixed* (errclass classifies), *both fixed*
(``errclass.fanout``, then a genuine disk fault). Every number in the table and
the report is read back from Prometheus's HTTP API.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

INSTALL_PROMETHEUS = (
    "The demo needs a Prometheus server (it never fakes the alert evaluation).\n"
    "  Debian/Ubuntu:  sudo apt-get install prometheus   (or run `make demo` as root)\n"
    "  elsewhere:      https://prometheus.io/download/, then --prometheus /path/to/prometheus"
)
INSTALL_EXTRA = "The demo needs errclass's demo extra: pip install 'errclass[demo]' ({})"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the seed's catch-up incident on loopback, before and after, with a real Prometheus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="errclass-demo", help="report folder (default errclass-demo)")
    p.add_argument("--prometheus", default="prometheus", help="the Prometheus server binary")
    p.add_argument("--prometheus-port", type=int, default=0, help="default: a free port")
    p.add_argument("--peer-port", type=int, default=0, help="default: a free port")
    p.add_argument("--screenshot", default="", help="also save a PNG of the report (chromium)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    missing = _missing_modules()
    if missing:
        print(INSTALL_EXTRA.format(", ".join(missing) + " missing"), file=sys.stderr)
        return 2
    from ._prometheus import DemoError

    binary = shutil.which(args.prometheus)
    if binary is None:
        print(f"error: no Prometheus binary {args.prometheus!r} found.\n{INSTALL_PROMETHEUS}",
              file=sys.stderr)  # fmt: skip
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    from ._run import Demo

    demo = Demo(binary, Path(args.out), args.prometheus_port, args.peer_port)
    try:
        ok = demo.run()
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every process the demo started is stopped", file=sys.stderr)
        return 130
    finally:
        demo.cleanup()
    if args.screenshot:
        demo.screenshot(Path(args.screenshot))
    return 0 if ok else 1


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM: the same orderly cleanup as Ctrl-C


def _missing_modules() -> list[str]:
    import importlib.util

    needed = ("httpx", "rich", "starlette", "uvicorn", "yaml")
    return [m for m in needed if importlib.util.find_spec(m) is None]


__all__ = ["register", "run"]
