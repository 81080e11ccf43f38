"""The fan-out on anyio (trio): a task group whose children never raise but cancellation."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from . import _deadline
from ._fanout_run import CHILD, Child, Run, cut


async def anyio_fanout(run: Run[Any], detached: bool) -> list[Any]:
    """Start *limit* children at once, then one each time a child ends."""
    import anyio
    from anyio.lowlevel import checkpoint_if_cancelled

    cancelled_class = anyio.get_cancelled_exc_class()
    active = 0
    ended = anyio.Event()  # replaced each time the starter waits on it

    async def child(i: int) -> None:
        nonlocal active
        try:
            if detached:  # like the seed's existence check: a cancelled caller starts nothing
                try:
                    await checkpoint_if_cancelled()
                except cancelled_class:
                    run.unstarted.add(i)
                    raise
            with anyio.CancelScope(shield=detached):
                await _child(run, i, cancelled_class)
        finally:
            active -= 1
            ended.set()

    try:
        async with anyio.create_task_group() as tg:
            while True:
                ended = anyio.Event()
                while active < run.limit and (i := run.take()) is not None:
                    active += 1
                    tg.start_soon(child, i)
                if not run.more():
                    break
                await ended.wait()
        # trio lets a nursery whose children were all shielded exit normally
        # under a cancelled scope; the caller must still see its cancellation.
        await checkpoint_if_cancelled()
    except cancelled_class as cancel:
        run.stop = run.caller_cancelled = True
        raised = run.cancelled(cancel)
        if raised is cancel:
            raise
        raise raised from None  # the failures, and the caller's cancellation last
    except BaseException:
        run.not_started()  # closes coroutines that will never be awaited
        raise
    return run.outcome()


async def _child(run: Run[Any], i: int, cancelled_class: type[BaseException]) -> None:
    import anyio

    tracker = run.tracker
    t0, ctx = tracker.start()
    deadline = anyio.current_time() + run.timeout if run.timeout is not None else None
    try:
        with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
            expired = _deadline.Expiry(lambda: scope.cancel_called)
            CHILD.set(Child(deadline, expired.expired))
            with _deadline.watching(expired):
                result = await run.awaitable(i)
        if scope.cancelled_caught:
            raise cut(TimeoutError(f"fanout child {i} exceeded {run.timeout}s"))
    except cancelled_class as e:
        tracker.fail(e, t0, ctx)
        raise  # anyio and trio need the cancellation to reach its scope
    except BaseException as e:
        tracker.fail(e, t0, ctx)
        run.failed(i, e)
        if not isinstance(e, Exception):
            raise
        return
    tracker.ok(t0, ctx)
    run.results[i] = result


async def detached(fn: Callable[[], Awaitable[Any]], child: Child) -> Any:
    """``errclass.detached`` on anyio: a shielded scope, bounded by the child's deadline."""
    import anyio

    deadline = math.inf if child.deadline is None else child.deadline
    with anyio.CancelScope(shield=True, deadline=deadline):
        return await fn()
    raise cut(TimeoutError("errclass.detached(): the fanout child's timeout passed"))
