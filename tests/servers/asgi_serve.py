"""Serve ``tests.servers.asgi_app`` in-process: ``python -m tests.servers.asgi_serve
--server uvicorn|hypercorn --port P``.

Unlike uvicorn's and hypercorn's command lines, which end the process right
after cancelling the requests still running at the end of the graceful-shutdown
timeout, this keeps the event loop alive until those requests have finished, so
the shutdown test can see what they recorded.
"""

from __future__ import annotations

import asyncio

from tests.servers.asgi_app import app as served


def main() -> None:
    """Serve ``app`` in-process; SIGTERM starts the server's graceful shutdown and
    the process lives on until the requests it cancelled have finished."""
    import argparse
    import signal

    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=["uvicorn", "hypercorn"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grace", type=float, default=1.0)
    args = parser.parse_args()

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        if args.server == "uvicorn":
            import uvicorn

            config = uvicorn.Config(
                served, port=args.port, log_level="warning", timeout_graceful_shutdown=args.grace
            )
            server = uvicorn.Server(config)
            # uvicorn takes SIGTERM over while serving and re-raises it at the end;
            # this handler then keeps the process alive for the cleanup below.
            signal.signal(signal.SIGTERM, lambda *_: None)
            await server.serve()
        else:
            from hypercorn.asyncio import serve as hypercorn_serve
            from hypercorn.config import Config

            config = Config()
            config.bind = [f"127.0.0.1:{args.port}"]
            config.graceful_timeout = args.grace
            loop.add_signal_handler(signal.SIGTERM, stopping.set)
            await hypercorn_serve(served, config, shutdown_trigger=stopping.wait)  # type: ignore[arg-type]
        await asyncio.sleep(0.5)  # the cancelled requests record their outcome

    asyncio.run(serve())


if __name__ == "__main__":
    main()
