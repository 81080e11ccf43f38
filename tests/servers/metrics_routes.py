"""``/metrics`` (the default registry) served in front of a test app, outside errclass.

Its own module, with no side effect on import (no counter, no tracked producer),
so that any server module can use it without adding series to what it serves."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import prometheus_client

__all__ = ["ASGIApp", "WSGIApp", "with_metrics_asgi", "with_metrics_wsgi"]

ASGIApp = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_metrics_asgi(app: ASGIApp) -> ASGIApp:
    """*app*, with ``/metrics`` (the default registry) served in front of it."""
    metrics = prometheus_client.make_asgi_app()

    async def served(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await metrics(scope, receive, send)
        else:
            await app(scope, receive, send)

    return served


def with_metrics_wsgi(app: WSGIApp) -> WSGIApp:
    metrics = prometheus_client.make_wsgi_app()

    def served(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        return app(environ, start_response)

    return served
