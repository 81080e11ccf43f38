"""The YAML loader migrate reads with, shared by the document views and the read-back
check of edited literals (so neither imports the other)."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def composer() -> Any:
    """A loader that only composes: no implicit typing (a scalar's tag stays empty unless
    the file spells one), which is all locating strings needs, and faster."""
    import yaml

    base = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

    class Composer(base):  # type: ignore[misc, valid-type]
        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            return ""

    return Composer
