"""Issue 13 items 4 and 5: errclass's own look at an exception, and lying class names."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

import errclass


class Boom(BaseException):
    """Not KeyboardInterrupt/SystemExit: must not replace the program's exception."""


def _raise(exc: BaseException) -> None:
    raise exc


class LoudStr(RuntimeError):  # the uvloop rule reads str() of a RuntimeError
    def __str__(self) -> str:
        raise Boom


class LoudErrno(OSError):  # errno rules read .errno of an OSError
    @property
    def errno(self) -> int:  # type: ignore[override]
        raise Boom


class LoudCause(RuntimeError):  # the chain rule reads __cause__
    @property
    def __cause__(self) -> BaseException | None:  # type: ignore[override]
        raise Boom


@pytest.mark.parametrize("cls", [LoudStr, LoudErrno, LoudCause])
def test_base_exception_from_the_look_is_contained(cls: type[BaseException]) -> None:
    outcome = errclass.classify(cls())
    assert outcome.reason is errclass.Reason.WRITE_FAILED
    registry = CollectorRegistry()
    counter = Counter("look_outcomes", "x", ("reason",), registry=registry)
    exc = cls()
    with pytest.raises(cls) as info:
        # logger=None: a logging handler formatting str() is the sinks' look (contained there)
        errclass.track(counter, logger=None)(_raise)(exc)
    assert info.value is exc
    assert registry.get_sample_value("look_outcomes_total", {"reason": "write_failed"}) == 1


def _boom(event: errclass.Event) -> None:
    raise Boom


@pytest.mark.parametrize("fails", [True, False])
def test_base_exception_from_a_sink_is_contained(fails: bool) -> None:
    """A sink (or what it formats) raising a BaseException that is not an interpreter
    exit is a sink failure: contained and counted, never the program's outcome."""
    registry = CollectorRegistry()
    counter = Counter("sink_look_outcomes", "x", ("reason",), registry=registry)
    exc = RuntimeError("x")
    wrapped = errclass.track(counter, _boom, logger=None)(_raise if fails else lambda e: e)
    if fails:
        with pytest.raises(RuntimeError) as info:
            wrapped(exc)
        assert info.value is exc
    else:
        assert wrapped(exc) is exc
    reason = "write_failed" if fails else "ok"
    assert registry.get_sample_value("sink_look_outcomes_total", {"reason": reason}) == 1


@pytest.mark.parametrize("exit_cls", [KeyboardInterrupt, SystemExit])
def test_interpreter_exits_from_the_look_pass_through(exit_cls: type[BaseException]) -> None:
    class Exits(RuntimeError):
        def __str__(self) -> str:
            raise exit_cls

    with pytest.raises(exit_cls):
        errclass.classify(Exits())


class _Lying(str):
    """A module name that looks up as itself but splits as another module."""

    __slots__ = ()

    def split(self, sep: str | None = None, maxsplit: int = -1) -> list[str]:  # type: ignore[override]
        return ["concurrent", "futures", "_base"]


class Error(Exception):
    """Reachable by its real name, so only the lie can rename it."""


class Honest(Exception):
    pass


_OWN = errclass.Policy(before=[errclass.Rule(errclass.Reason.WRITE_FAILED, names="tests.Nothing")])


def test_honest_class_of_a_named_package_keeps_its_name() -> None:
    assert _OWN.classify(Honest()).error_type == f"{__name__}.Honest"


def test_str_subclass_module_gets_no_name_label() -> None:
    # On the base code this went out as error.type="concurrent.futures.Error".
    Error.__module__ = _Lying(__name__)
    try:
        assert _OWN.classify(Error()).error_type == "_OTHER"
    finally:
        Error.__module__ = __name__
