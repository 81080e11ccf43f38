"""``python -m errclass``: the errclass command line."""

from ._cli import main

raise SystemExit(main())
