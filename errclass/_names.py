"""Names: ``module.qualname`` for producers and exception classes, one rule everywhere."""

from __future__ import annotations

import sys


def qualified_name(obj: object, *, public: bool = False) -> str:
    """``module.qualname`` of *obj*, or of its class when it has no ``__qualname__``
    (a callable instance, an ASGI app object).

    With *public* (``error.type`` values): builtins by bare name, and private
    module parts dropped (``errclass._fanout.FanoutError`` -> ``errclass.FanoutError``).
    """
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    module = getattr(target, "__module__", "?")
    qualname = getattr(target, "__qualname__", "?")
    if public:
        return public_name(str(module), str(qualname))
    return f"{module}.{qualname}"


def public_name(module: str, qualname: str) -> str:
    """An ``error.type`` value: builtins by bare name, private module parts dropped."""
    if module == "builtins":
        return qualname
    module = ".".join(p for p in module.split(".") if not p.startswith("_")) or module
    return f"{module}.{qualname}"


def caller_name(depth: int) -> str:
    """``module.qualname`` of the function *depth* frames above the caller."""
    frame = sys._getframe(depth + 1)
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}"
