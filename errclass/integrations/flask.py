"""Flask: the WSGI middleware as a Flask extension, producers named by endpoint::

    from errclass.integrations.flask import Errclass

    app = Flask(__name__)
    Errclass(app)                 # or: errclass_ext = Errclass(); errclass_ext.init_app(app)

Each request is recorded under its ``url_rule`` endpoint (``"index"``,
``"bp.download"``: Flask's own name for it); unmatched paths share
``errclass.unmatched``. Options are those of
``errclass.integrations.wsgi.ErrclassMiddleware``.
"""

from __future__ import annotations

from typing import Any

from ._routes import ROUTE_KEY, UNMATCHED

__all__ = ["Errclass"]


class Errclass:
    """Flask extension: wraps ``app.wsgi_app`` and names each request's producer."""

    def __init__(self, app: Any = None, *sinks: object, **options: Any) -> None:
        self._sinks, self._options = sinks, options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        from .wsgi import ErrclassMiddleware

        if app.extensions.get("errclass") is not None:
            raise RuntimeError("errclass is already set up on this Flask app")
        app.wsgi_app = ErrclassMiddleware(app.wsgi_app, *self._sinks, **self._options)
        app.before_request(_name_route)
        app.extensions["errclass"] = self


def _name_route() -> None:
    from flask import request

    rule = request.url_rule
    request.environ[ROUTE_KEY] = UNMATCHED if rule is None else rule.endpoint
