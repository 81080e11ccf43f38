"""What migrate and check print: unified diffs, a summary table, advice per finding."""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from errclass.migrate._files import FileResult
from errclass.migrate._semantics import Selection

# Findings that need someone's attention (exit status 1).
ATTENTION = frozenset(("changed", "manual", "retune", "skipped"))


@dataclass(frozen=True)
class Row:
    where: str  # file:line
    location: str
    old: str
    new: str
    status: str
    message: str


def rows(results: list[FileResult]) -> list[Row]:
    out = []
    for r in results:
        name = str(r.path)
        if r.error:
            out.append(Row(name, "", "", "", "error", r.error))
        for note in r.notes:
            out.append(Row(name, "", "", "", "ignored", note))
        for site, er in r.sites:
            for f in er.findings:
                out.append(
                    Row(
                        f"{name}:{r.line(site.start)}",
                        site.location,
                        f.old,
                        f.new,
                        f.status,
                        f.message,
                    )
                )
    return out


def diff(results: list[FileResult]) -> str:
    parts: list[str] = []
    for r in results:
        if r.changed:
            parts.extend(
                difflib.unified_diff(
                    r.text.splitlines(keepends=True),
                    r.new_text.splitlines(keepends=True),
                    _side("a", r.path),
                    _side("b", r.path),
                )
            )
            if parts and not parts[-1].endswith("\n"):
                parts.append("\n\\ No newline at end of file\n")
    return "".join(parts)


def _side(prefix: str, path: object) -> str:
    text = str(path)
    return text if text.startswith("/") else f"{prefix}/{text}"


def table(found: list[Row]) -> str:
    if not found:
        return ""
    head = ("file", "location", "old", "new", "status")
    body = [
        (
            r.where,
            r.location,
            r.old,
            r.new,
            r.status if r.status == "changed" else f"{r.status}: {r.message}",
        )
        for r in found
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(4)]
    lines = []
    for cells in [head, *body]:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(cells[:4], widths, strict=True)) + "  " + cells[4]
        )
    return "\n".join(line.rstrip() for line in lines) + "\n"


def summary(results: list[FileResult], found: list[Row]) -> str:
    counts = Counter(r.status for r in found)
    exprs = sum(len(r.sites) for r in results)
    files = sum(1 for r in results if r.changed)
    parts = [f"{len(results)} file(s), {exprs} expression(s)", f"{files} file(s) to change"]
    parts += [f"{n} {status}" for status, n in sorted(counts.items())]
    return ", ".join(parts) + "\n"


def advice(row: Row, sel: Selection) -> str:
    """What to do about a finding of ``errclass check``."""
    split = "|".join(sel.split)
    if row.status == "changed" and sel.mode == "preserve":
        return (
            f"selector on {sel.label}={sel.old!r} loses {split} after the split: "
            f"run `errclass migrate --mode preserve` to keep its numbers, or move to --mode split"
        )
    if row.status == "changed" and row.old and sel.label not in row.old:
        return (
            f"ratio whose denominator still counts {split}: exclude it from both sides "
            f"(`errclass migrate --mode split`)"
        )
    if row.status == "changed":
        return (
            f"counts {split} as a fault after the split: exclude it "
            f"(`errclass migrate --mode split`)"
        )
    return row.message


def check_report(found: list[Row], sel: Selection) -> str:
    lines = []
    for row in found:
        what = f" {row.old}" if row.old else ""
        suggestion = f" -> {row.new}" if row.new else ""
        loc = f" {row.location}:" if row.location else ""
        status = "to change" if row.status == "changed" else row.status
        lines.append(f"{row.where}:{loc}{what}{suggestion}\n    {status}: {advice(row, sel)}")
    return "\n".join(lines) + ("\n" if lines else "")


def needs_attention(found: list[Row]) -> bool:
    return any(r.status in ATTENTION for r in found)


__all__ = [
    "Row",
    "advice",
    "check_report",
    "diff",
    "needs_attention",
    "rows",
    "summary",
    "table",
]
