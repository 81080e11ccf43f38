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

from ._routes import ROUTE_KEY, UNMATCHED, AppExtension

__all__ = ["Errclass"]


def _name_route() -> None:
    from flask import request

    rule = request.url_rule
    request.environ[ROUTE_KEY] = UNMATCHED if rule is None else rule.endpoint


class Errclass(AppExtension):
    """Flask extension: wraps ``app.wsgi_app`` and names each request's producer."""

    framework, app_attr = "Flask", "wsgi_app"

    @staticmethod
    def middleware() -> Any:
        from .wsgi import ErrclassMiddleware

        return ErrclassMiddleware

    name_route = staticmethod(_name_route)
