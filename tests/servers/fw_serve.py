"""Serve a WSGI app of the framework matrix with werkzeug (threaded):
``python -m tests.servers.fw_serve MODULE:ATTR PORT``."""

from __future__ import annotations

import importlib
import sys

from werkzeug.serving import make_server


def main() -> None:
    target, port = sys.argv[1], int(sys.argv[2])
    module, attr = target.split(":")
    app = getattr(importlib.import_module(module), attr)
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main()
