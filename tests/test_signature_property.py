"""Property: through a compiled wrapper of any signature, a call behaves as without errclass.

Random parameter lists (positional-only, positional, ``*args``, keyword-only,
``**kwargs``, defaults that are distinct objects) and random calls, some of
which do not bind and some of which make the body raise: the plain and the
tracked function give the same values (the very default objects), the same
exception object, the same ``TypeError`` message at the call, and the tracked
one records exactly once if and only if the producer started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import errclass
from errclass import Event

RAISE = object()  # an argument that makes the body raise
RAISED: list[BaseException] = []  # what the bodies raised, last last


class Boom(Exception):
    pass


def _body(bound: dict[str, Any]) -> dict[str, Any]:
    values = [*bound.values(), *bound.get("args_", ()), *bound.get("kw_", {}).values()]
    if any(v is RAISE for v in values):
        RAISED.append(Boom(bound))
        raise RAISED[-1]
    return bound


@st.composite
def signatures(draw: st.DrawFn) -> dict[str, Any]:
    names = iter(f"n{i}" for i in range(100))
    posonly = [next(names) for _ in range(draw(st.integers(0, 3)))]
    positional = [next(names) for _ in range(draw(st.integers(0, 3)))]
    kwonly = [next(names) for _ in range(draw(st.integers(0, 3)))]
    n_defaults = draw(st.integers(0, len(posonly) + len(positional)))
    kw_defaulted = [n for n in kwonly if draw(st.booleans())]
    return {
        "posonly": posonly,
        "positional": positional,
        "varargs": draw(st.booleans()),
        "kwonly": kwonly,
        "varkw": draw(st.booleans()),
        "n_defaults": n_defaults,
        "kw_defaulted": kw_defaulted,
        # A function; one in a class, called on an instance; a bound method tracked.
        "method": draw(st.sampled_from(["function", "class", "bound"])),
    }


SOURCES = {
    "sync": "def f({params}):\n    return _body({mapping})\n",
    "coro": "async def f({params}):\n    await _sleep(0)\n    return _body({mapping})\n",
    "gen": (
        "def f({params}):\n    sent = yield _body({mapping})\n    yield sent\n    return 'done'\n"
    ),
    "agen": (
        "async def f({params}):\n"
        "    sent = yield _body({mapping})\n    await _sleep(0)\n    yield sent\n"
    ),
}


def build(kind: str, sig: dict[str, Any]) -> Callable[..., Any]:
    """The function of *sig*, each default a distinct object, kw-defaults too."""
    params = [*sig["posonly"], *(["/"] if sig["posonly"] else []), *sig["positional"]]
    if sig["varargs"]:
        params.append("*args_")
    elif sig["kwonly"]:
        params.append("*")
    params += sig["kwonly"]
    if sig["varkw"]:
        params.append("**kw_")
    names = [*sig["posonly"], *sig["positional"], *sig["kwonly"]]
    names += ["args_"] * sig["varargs"] + ["kw_"] * sig["varkw"]
    mapping = "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}"
    if sig["method"] != "function":
        params.insert(0, "self")
    namespace: dict[str, Any] = {"_body": _body, "_sleep": asyncio.sleep}
    exec(SOURCES[kind].format(params=", ".join(params), mapping=mapping), namespace)
    fn: Any = namespace["f"]
    if sig["n_defaults"]:
        fn.__defaults__ = tuple(object() for _ in range(sig["n_defaults"]))
    if sig["kw_defaulted"]:
        fn.__kwdefaults__ = {n: object() for n in sig["kw_defaulted"]}
    return fn  # type: ignore[no-any-return]


calls = st.tuples(
    st.lists(st.sampled_from([1, 2, RAISE]), max_size=8),
    st.dictionaries(
        st.sampled_from([f"n{i}" for i in range(10)] + ["self", "extra", "args_"]),
        st.sampled_from([3, 4, RAISE]),
        max_size=5,
    ),
)


def drive(kind: str, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """("call", message) if the call itself raised; else what running it gave."""
    try:
        made = fn(*args, **kwargs)
    except TypeError as e:
        return ("call", str(e))
    except Boom as e:  # a sync body runs in the call
        return ("raised", e)
    try:
        if kind == "sync":
            return ("ok", made)
        if kind == "coro":
            return ("ok", asyncio.run(made))
        if kind == "gen":
            return ("ok", [next(made), made.send("s"), *made])

        async def run() -> list[Any]:
            return [await made.__anext__(), await made.asend("s"), *[x async for x in made]]

        return ("ok", asyncio.run(run()))
    except Boom as e:
        return ("raised", e)


def _same(a: Any, b: Any) -> bool:
    """Equal, with objects (defaults, exceptions) compared by identity."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return bool(a.keys() == b.keys()) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (int, str)):
        return bool(a == b)
    return a is b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(SOURCES)),
    sig=signatures(),
    call=calls,
)
def test_a_tracked_call_is_the_plain_call(
    kind: str, sig: dict[str, Any], call: tuple[list[Any], dict[str, Any]]
) -> None:
    args, kwargs = call
    plain = build(kind, sig)
    events: list[Event] = []
    track = errclass.track(events.append, logger=None)
    if sig["method"] == "function":
        tracked = track(plain)
    elif sig["method"] == "class":
        plain, tracked = type("C", (), {"f": plain})().f, type("C", (), {"f": track(plain)})().f
    else:
        plain = type("C", (), {"f": plain})().f
        tracked = track(plain)
    want, got = drive(kind, plain, args, kwargs), drive(kind, tracked, args, kwargs)
    assert want[0] == got[0], (want, got)
    if want[0] == "call":
        assert got == want
        assert events == []  # never started: nothing recorded
        return
    if want[0] == "raised":
        # Two runs, two Boom objects: each carries what its body was bound to.
        assert got[1] is RAISED[-1]  # the very object the body raised
        assert _same(want[1].args[0], got[1].args[0])
        assert [e.exception for e in events] == [got[1]]
        return
    assert _same(want[1], got[1])
    assert len(events) == 1
    assert events[0].outcome.reason.value == "ok"
