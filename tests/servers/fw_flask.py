"""Flask with the errclass extension, for the framework matrix."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from errclass.integrations.flask import Errclass
from tests.servers.fw_common import ROUTES, body
from tests.servers.metrics_routes import with_metrics_wsgi

flask_app = Flask(__name__)


def add(route: str) -> None:
    def view() -> Any:
        return Response(body(route), mimetype="application/octet-stream")

    view.__name__ = view.__qualname__ = route
    flask_app.add_url_rule(f"/{route}", view_func=view)


for _route in ROUTES:
    add(_route)

Errclass(flask_app, logger=None)
app = with_metrics_wsgi(flask_app)
