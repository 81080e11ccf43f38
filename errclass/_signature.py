"""Wrappers generated with the wrapped function's own parameters.

A generic ``def call(*args, **kwargs)`` wrapper changes the observed program: a
call whose arguments do not bind fails only inside the wrapper (for a coroutine,
generator or async generator function, at the first ``await``/``next()``, not at
the call), and it costs the packing of ``*args, **kwargs`` and a call CPython
3.11 does not inline. So for a plain Python function (or a bound method of one)
the wrapper is compiled, as ``dataclasses`` does, with the same parameter list
read from the function's code object, which is what Python binds against, not
``inspect.signature()``, which follows ``__wrapped__`` and ``__signature__``.

* Defaults are the function's own ``__defaults__``/``__kwdefaults__`` objects,
  assigned to the wrapper, never written as source.
* Annotations are not compiled (``functools.wraps`` copies the dict).
* Every name the wrapper's body uses, builtins included, carries a prefix no
  parameter starts with, so a parameter named ``type`` or ``fn`` cannot shadow it.
* A bound method gets its function's wrapper, bound to the same object.
* Other callables (``functools.partial``, builtins, callable objects, code with
  odd names) get the same body behind ``*args, **kwargs``.

Compiled factories are cached per (kind, parameter names, prefix, variant): a
function's or coroutine's body leaves out what its tracker does not need.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import keyword
import linecache
import types
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from inspect import CO_VARARGS, CO_VARKEYWORDS
from typing import Any

__all__ = ["Shape", "compile_wrapper", "shape_of"]

PREFIX = "_ec_"


@dataclass(frozen=True)
class Shape:
    """A parameter list: its names, by kind."""

    posonly: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    varargs: str | None = None
    kwonly: tuple[str, ...] = ()
    varkw: str | None = None

    def names(self) -> tuple[str, ...]:
        rest = tuple(n for n in (self.varargs, self.varkw) if n is not None)
        return self.posonly + self.positional + self.kwonly + rest

    def parameters(self) -> str:
        parts = [*self.posonly, *(["/"] if self.posonly else []), *self.positional]
        if self.varargs is not None:
            parts.append(f"*{self.varargs}")
        elif self.kwonly:
            parts.append("*")
        parts += self.kwonly
        if self.varkw is not None:
            parts.append(f"**{self.varkw}")
        return ", ".join(parts)

    def arguments(self) -> str:
        """The call forwarding every parameter as it was bound."""
        parts = [*self.posonly, *self.positional]
        if self.varargs is not None:
            parts.append(f"*{self.varargs}")
        parts += [f"{n}={n}" for n in self.kwonly]
        if self.varkw is not None:
            parts.append(f"**{self.varkw}")
        return ", ".join(parts)


GENERIC = Shape(varargs=f"{PREFIX}a", varkw=f"{PREFIX}k")


def shape_of(fn: object) -> Shape | None:
    """*fn*'s parameters as Python binds them, or None for the generic wrapper."""
    if type(fn) is not types.FunctionType:
        return None
    code = fn.__code__
    npos, nkw = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames
    at = npos + nkw
    varargs = names[at] if code.co_flags & CO_VARARGS else None
    at += varargs is not None
    varkw = names[at] if code.co_flags & CO_VARKEYWORDS else None
    split = code.co_posonlyargcount
    shape = Shape(names[:split], names[split:npos], varargs, names[npos : npos + nkw], varkw)
    if not all(map(_writable, shape.names())):
        return None  # a hand-built code object: its names cannot be written as source
    return shape


def _writable(name: str) -> bool:
    """*name* compiles back to itself as a parameter (the parser NFKC-normalises)."""
    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and name != "__debug__"
        and unicodedata.normalize("NFKC", name) == name
    )


def _prefix(names: tuple[str, ...]) -> str:
    prefix = PREFIX
    while any(n.startswith(prefix) for n in names):
        prefix += "x"
    return prefix


def compile_wrapper(kind: str, fn: Callable[..., Any], **cells: Any) -> Callable[..., Any]:
    """The wrapper of *kind* around *fn*, its body closing over *cells*, with
    *fn*'s metadata (``functools.wraps``).

    A bound method's wrapper is the method's function's, bound to the same
    object, so that ``self`` binds (and a wrong call fails) exactly as before.
    """
    values = [cells[name] for name in CELLS[kind]]
    variant = _variant(kind, cells)
    target: Any = fn.__func__ if isinstance(fn, types.MethodType) else fn
    shape = shape_of(target)
    signature = None
    if shape is not None and target is not fn:
        # inspect.signature() of a method drops the first parameter of its
        # function's: the wrapper reports the method's function's, as before.
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):  # a bogus __signature__ or __wrapped__
            shape = None
    if shape is None:
        make = _factory(kind, GENERIC, PREFIX, variant)
        return functools.update_wrapper(make(fn, *values), fn)
    wrapper = _factory(kind, shape, _prefix(shape.names()), variant)(target, *values)
    # The very default objects: never written as source, nor copied.
    wrapper.__defaults__, wrapper.__kwdefaults__ = target.__defaults__, target.__kwdefaults__
    functools.update_wrapper(wrapper, fn)
    if signature is None:
        return wrapper  # type: ignore[no-any-return]
    wrapper.__signature__ = signature
    return types.MethodType(wrapper, fn.__self__)  # type: ignore[attr-defined]


def _variant(kind: str, cells: dict[str, Any]) -> tuple[bool, ...]:
    """What the function/coroutine body is specialised for: (timed, traced, fast ok)."""
    if kind not in ("sync", "coro"):
        return ()
    return bool(cells["timed"]), bool(cells["traced"]), cells["inc"] is not None


# The bodies. ``{p}`` is the prefix; ``{params}``/``{args}`` the parameter list and
# the forwarding call. Each reads only its cells and the prefixed builtins below.

_SYNC_CELLS = ("timed", "traced", "ok", "fail", "inc", "sink_kind", "otel", "current")
CELLS = {
    "sync": (*_SYNC_CELLS, "captures", "alive", "active"),
    "coro": (*_SYNC_CELLS, "captures", "alive", "active"),
    "gen": ("tr",),
    "agen": ("tr",),
}

_MAKE_SYNC = """\
def {p}make({p}fn, {p}timed, {p}traced, {p}ok, {p}fail, {p}inc, {p}sink_kind, {p}otel,
             {p}current, {p}captures, {p}alive, {p}active):
    {asynchronous}def {p}call({params}):
"""

# With a tracer provider set (read per call: one set later is honoured), the
# call runs with the trace context and ok() decides; without one, below it.
_TRACED = """\
        if {p}otel._TRACER_PROVIDER is not None:
            {p}ctx = {p}current()
            try:
                {p}result = {wait}{p}fn({args})
            except {p}BaseException as {p}e:
                {p}fail({p}e, {t0}, {p}ctx)
                raise
            {p}ok({t0}, {p}ctx)
            return {p}result
"""

_CALL = """\
        try:
            {p}result = {wait}{p}fn({args})
        except {p}BaseException as {p}e:
            {p}fail({p}e, {t0}, None)
            raise
"""

# ok() inlined for one pre-bound counter child, while no capture runs and no
# transport is published in this context (none is when none is alive: that list
# is read before the context).
_FAST_OK = """\
        if not {p}captures and (not {p}alive or {p}active() is None):
            try:
                {p}inc()
            except {p}PASS_THROUGH:
                raise
            except {p}BaseException as {p}e:
                {p}contain({p}sink_kind, {p}e)
        else:
            {p}ok({t0}, None)
"""


def _sync_template(asynchronous: bool, timed: bool, traced: bool, fast: bool) -> str:
    """The function/coroutine body, specialised for its tracker: what it does not
    need (the clock, the trace context, the fast ok) is left out, not tested per call."""
    source = _MAKE_SYNC
    if timed:
        source += "        {p}t0 = {p}perf_counter()\n"
    if traced:
        source += _TRACED
    source += _CALL
    source += _FAST_OK if fast else "        {p}ok({t0}, None)\n"
    source += "        return {p}result\n    return {p}call\n"
    return source.format(
        p="{p}",
        params="{params}",
        args="{args}",
        asynchronous="async " if asynchronous else "",
        wait="await " if asynchronous else "",
        t0="{p}t0" if timed else "0.0",
    )


_GEN = """\
def {p}make({p}fn, {p}tr):
    def {p}gen({params}):
        {p}t0 = {p}perf_counter() if {p}tr.timed else 0.0
        {p}ctx = {p}capture() if {p}tr.traced else None
        {p}inner = {p}fn({args})
        {p}run = {p}pending({p}tr, {p}t0, {p}ctx)
        try:
            {p}more = True
            {p}send = {p}inner.send if {p}type({p}inner) is {p}GeneratorType else None
            if {p}send is not None and {p}Relay is not None:
                {p}relay = {p}Relay({p}inner, None)
                {p}relay.send = {p}send
                {p}relay.throw = {p}inner.throw
                try:
                    {p}result = yield from {p}relay
                    {p}more = False
                except {p}BaseException as {p}thrown:
                    if not {p}getattr({p}relay, "closing", False):
                        raise
                    if {p}type({p}thrown) is {p}GeneratorExit:
                        {p}close({p}inner)
                        raise
                    try:
                        {p}item = {p}inner.throw({p}thrown)
                    except {p}StopIteration as {p}stop:
                        {p}result = {p}stop.value
                        {p}more = False
            else:
                try:
                    {p}item = {p}next({p}inner)
                except {p}StopIteration as {p}stop:
                    {p}result = {p}stop.value
                    {p}more = False
            while {p}more:
                try:
                    {p}sent = yield {p}item
                except {p}BaseException as {p}thrown:
                    {p}throw = {p}getattr({p}inner, "throw", None)
                    if {p}type({p}thrown) is {p}GeneratorExit or {p}throw is None:
                        {p}close({p}inner)
                        raise
                    try:
                        {p}item = {p}throw({p}thrown)
                    except {p}StopIteration as {p}stop:
                        {p}result = {p}stop.value
                        break
                else:
                    try:
                        if {p}send is not None:
                            {p}item = {p}send({p}sent)
                        elif {p}sent is None:
                            {p}item = {p}next({p}inner)
                        else:
                            {p}item = {p}inner.send({p}sent)
                    except {p}StopIteration as {p}stop:
                        {p}result = {p}stop.value
                        break
        except {p}BaseException as {p}e:
            if {p}run is None or {p}run.claim():
                {p}tr.fail({p}e, {p}t0, {p}ctx)
            raise
        finally:
            {p}close({p}inner)
        if {p}run is None or {p}run.claim():
            {p}tr.ok({p}t0, {p}ctx)
        return {p}result
    return {p}gen
"""

_AGEN = """\
def {p}make({p}fn, {p}tr):
    async def {p}agen({params}):
        {p}t0 = {p}perf_counter() if {p}tr.timed else 0.0
        {p}ctx = {p}capture() if {p}tr.traced else None
        {p}inner = {p}fn({args})
        {p}run = {p}pending({p}tr, {p}t0, {p}ctx)
        {p}athrow = {p}getattr({p}inner, "athrow", None)
        {p}asend = {p}getattr({p}inner, "asend", None)
        try:
            try:
                if {p}type({p}inner) is {p}AsyncGeneratorType:
                    async for {p}item in {p}inner:
                        while True:
                            try:
                                {p}sent = yield {p}item
                            except {p}BaseException as {p}thrown:
                                if {p}type({p}thrown) is {p}GeneratorExit:
                                    await {p}aclose({p}inner)
                                    raise
                                {p}item = await {p}athrow({p}thrown)
                                continue
                            if {p}sent is None:
                                break
                            {p}item = await {p}asend({p}sent)
                else:
                    {p}step = {p}inner.__anext__
                    {p}item = await {p}step()
                    while True:
                        try:
                            {p}sent = yield {p}item
                        except {p}BaseException as {p}thrown:
                            if {p}type({p}thrown) is {p}GeneratorExit:
                                await {p}aclose({p}inner)
                                raise
                            if {p}athrow is None:
                                raise
                            {p}item = await {p}athrow({p}thrown)
                        else:
                            if {p}sent is None or {p}asend is None:
                                {p}item = await {p}step()
                            else:
                                {p}item = await {p}asend({p}sent)
            except {p}StopAsyncIteration:
                pass
        except {p}BaseException as {p}e:
            if {p}run is None or {p}run.claim():
                {p}tr.fail({p}e, {p}t0, {p}ctx)
            raise
        finally:
            await {p}aclose({p}inner)
        if {p}run is None or {p}run.claim():
            {p}tr.ok({p}t0, {p}ctx)
    return {p}agen
"""


_BUILTINS = (
    "BaseException",
    "GeneratorExit",
    "StopAsyncIteration",
    "StopIteration",
    "getattr",
    "next",
    "type",
)

_GLOBALS: dict[str, Any] = {}  # filled by _scope with the helpers the bodies call


def provide(**helpers: Any) -> None:
    """Give the bodies their helpers (``perf_counter``, ``capture``, ...), by name."""
    _GLOBALS.update(helpers)


def _template(kind: str, variant: tuple[bool, ...]) -> str:
    if kind in ("sync", "coro"):
        return _sync_template(kind == "coro", *variant)
    return _GEN if kind == "gen" else _AGEN


@functools.lru_cache(maxsize=512)
def _factory(
    kind: str, shape: Shape, prefix: str, variant: tuple[bool, ...] = ()
) -> Callable[..., Any]:
    template = _template(kind, variant)
    source = template.format(p=prefix, params=shape.parameters(), args=shape.arguments())
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": __name__}
    namespace.update({prefix + name: getattr(builtins, name) for name in _BUILTINS})
    namespace.update({prefix + name: value for name, value in _GLOBALS.items()})
    # A name that says, in a traceback, where the frame comes from; registered
    # with linecache (as attrs does) so the traceback shows the wrapper's line.
    # One entry per shape, overwritten if the cache compiles it again.
    flags = "".join(
        f" {n}" for n, on in zip(("timed", "traced", "fast"), variant, strict=False) if on
    )
    filename = f"<errclass {kind} wrapper ({shape.parameters()}){flags}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    return namespace[prefix + "make"]  # type: ignore[no-any-return]
