"""Shared fixtures."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest

import errclass
from errclass.testing import capture_outcomes


@pytest.fixture
def events() -> Iterator[list[errclass.Event]]:
    """Every outcome recorded while the test runs."""
    with capture_outcomes() as captured:
        yield captured


@pytest.fixture
def sink() -> list[errclass.Event]:
    """A list that is also a sink: pass ``sink.append`` to track()/stream()."""
    return []


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run plain ``async def`` tests on a fresh asyncio loop (anyio-marked ones are anyio's)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj) or "anyio" in pyfuncitem.keywords:
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
    return True
