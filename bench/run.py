"""``make bench``: run every bench/bench_*.py and print their tables (ratios, same run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    only = set(sys.argv[1:])
    for path in sorted(here.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"\n## {path.stem}\n", flush=True)
        module.main()


if __name__ == "__main__":
    main()
