"""Migrate dashboards and alert rules to the reason split (``errclass migrate``/``check``).

Python API::

    sel = Selection(("my_outcomes_total",), label="reason", old="write_failed",
                    split=("client_gone",), mode="preserve")
    migrate_expr('rate(my_outcomes_total{reason="write_failed"}[5m])', sel).new_text
    results = plan_paths([Path("dashboards/")], sel)   # dry run: FileResult per file
    write_all(results, backup=True)                     # all files or none
"""

from errclass.migrate._expr import ExprResult, Finding, migrate_expr
from errclass.migrate._files import FileResult, WriteError, plan_file, plan_paths, write_all
from errclass.migrate._report import diff, rows, table
from errclass.migrate._semantics import Selection

__all__ = [
    "ExprResult",
    "FileResult",
    "Finding",
    "Selection",
    "WriteError",
    "diff",
    "migrate_expr",
    "plan_file",
    "plan_paths",
    "rows",
    "table",
    "write_all",
]
