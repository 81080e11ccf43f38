"""Django (ASGI ``app``, WSGI ``wsgi_app``) behind ErrclassMiddleware, for the
framework matrix. Under ASGI the matrix routes stream async iterators (a sync
one is consumed whole before Django sends); ``/sync_<route>`` streams the sync
producer under either handler (item 2 of issue 16)."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="errclass-test",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["errclass.integrations.django.ErrclassMiddleware"],
    INSTALLED_APPS=[],
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from errclass.integrations.asgi import ErrclassMiddleware as ASGIMiddleware  # noqa: E402
from errclass.integrations.wsgi import ErrclassMiddleware as WSGIMiddleware  # noqa: E402
from tests.servers.fw_common import (  # noqa: E402
    ROUTES,
    abody,
    body,
)
from tests.servers.metrics_routes import with_metrics_asgi, with_metrics_wsgi  # noqa: E402


def view(route: str, sync: bool) -> Any:
    def stream(request: HttpRequest) -> StreamingHttpResponse:
        asgi = hasattr(request, "scope")
        content = abody(route) if asgi and not sync else body(route)
        return StreamingHttpResponse(content, content_type="application/octet-stream")

    stream.__name__ = stream.__qualname__ = f"sync_{route}" if sync else route
    return stream


urlpatterns = [path(r, view(r, False)) for r in ROUTES]
urlpatterns += [path(f"sync_{r}", view(r, True)) for r in ROUTES]

app = with_metrics_asgi(ASGIMiddleware(get_asgi_application(), logger=None))
wsgi_app = with_metrics_wsgi(WSGIMiddleware(get_wsgi_application(), logger=None))
