"""What migrate and check print: unified diffs, a summary table, advice per finding."""

from __future__ import annotations

import difflib
import json
import textwrap
from collections import Counter
from dataclasses import dataclass
from typing import Any

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


def table(found: list[Row], verbose: bool = False) -> str:
    """The summary table of findings (ignored files: one line per kind, or each with
    *verbose*)."""
    shown = [r for r in found if verbose or r.status != "ignored"]
    if not shown:
        return ignored_summary(found, verbose)
    head = ("file", "location", "old", "new", "status")
    body = [
        (
            r.where,
            r.location,
            r.old,
            r.new,
            r.status if r.status == "changed" else f"{r.status}: {r.message}",
        )
        for r in shown
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(4)]
    lines = []
    for cells in [head, *body]:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(cells[:4], widths, strict=True)) + "  " + cells[4]
        )
    out = "\n".join(line.rstrip() for line in lines) + "\n"
    return out + ("" if verbose else ignored_summary(found, verbose))


def counts(results: list[FileResult], found: list[Row]) -> dict[str, Any]:
    """The numbers of the summary line, by name (for --format json too)."""
    skipped: Counter[str] = Counter()
    for r in results:
        skipped.update(r.skipped)
    return {
        "files": len(results),
        "expressions": sum(len(r.sites) for r in results),
        "files_to_change": sum(1 for r in results if r.changed),
        "findings": dict(sorted(Counter(r.status for r in found).items())),
        "skipped_queries": dict(sorted(skipped.items())),
    }


def summary(results: list[FileResult], found: list[Row]) -> str:
    c = counts(results, found)
    parts = [f"{c['files']} file(s), {c['expressions']} expression(s)"]
    parts.append(f"{c['files_to_change']} file(s) to change")
    parts += [f"{n} {status}" for status, n in c["findings"].items()]
    skipped = c["skipped_queries"]
    if skipped:
        what = " and ".join(f"{n} {why}" for why, n in skipped.items())
        parts.append(f"{what} queries skipped")
    return _wrap(", ".join(parts))


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


WIDTH = 100  # columns a report line keeps within, where the text has spaces to break at


def _kind(note: str) -> str:
    """What kind of thing an ignored note is about, without the place it names."""
    return note.removesuffix(": skipped").rsplit(": ", 1)[-1]


def ignored_summary(found: list[Row], verbose: bool = False) -> str:
    """One line per kind of ignored file or document, or one per note with *verbose*."""
    ignored = [r for r in found if r.status == "ignored"]
    if not ignored:
        return ""
    if verbose:
        return "".join(_wrap(f"{r.where}: ignored: {r.message}") for r in ignored)
    kinds = Counter(_kind(r.message) for r in ignored)
    lines = [f"ignored: {n} x {kind}" for kind, n in kinds.most_common()]
    lines[-1] += " (--verbose lists them)"
    return "".join(_wrap(line) for line in lines)


def _wrap(text: str, indent: str = "") -> str:
    if len(indent) + len(text) <= WIDTH:
        return indent + text + "\n"
    return (
        textwrap.fill(
            text,
            WIDTH,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        + "\n"
    )


def check_report(found: list[Row], sel: Selection, verbose: bool = False) -> str:
    """Findings first: ``file:line: status: where`` (where on a line of its own if that
    is too long), the selector and what it becomes, and the advice, wrapped; then the
    ignored files, one line per kind unless *verbose*. Places and selectors are never
    broken inside: only a selector longer than a line goes past WIDTH."""
    parts = []
    for row in found:
        if row.status == "ignored":
            continue
        head = f"{row.where}: {'to change' if row.status == 'changed' else row.status}"
        if row.location and len(head) + 2 + len(row.location) <= WIDTH:
            parts.append(f"{head}: {row.location}\n")
        else:
            parts.append(head + "\n" + (f"    {row.location}\n" if row.location else ""))
        if row.old:
            change = row.old + (f" -> {row.new}" if row.new else "")
            if len(change) + 4 > WIDTH and row.new:
                change = f"{row.old}\n    -> {row.new}"
            parts.append(f"    {change}\n")
        parts.append(_wrap(advice(row, sel), "    "))
    parts.append(ignored_summary(found, verbose))
    return "".join(parts)


def _file_line(row: Row) -> tuple[str, int | None]:
    path, _, line = row.where.rpartition(":")
    return (path, int(line)) if path and line.isdigit() else (row.where, None)


def check_json(results: list[FileResult], found: list[Row], sel: Selection) -> str:
    """The findings, ignored files, errors and counts as one JSON object."""
    findings, ignored, errors = [], [], []
    for row in found:
        path, line = _file_line(row)
        if row.status == "ignored":
            ignored.append({"file": path, "reason": row.message})
        elif row.status == "error":
            errors.append({"file": path, "message": row.message})
        else:
            findings.append(
                {
                    "file": path,
                    "line": line,
                    "location": row.location,
                    "status": row.status,
                    "old": row.old,
                    "new": row.new,
                    "message": advice(row, sel),
                }
            )
    report = {
        "findings": findings,
        "ignored": ignored,
        "errors": errors,
        "summary": counts(results, found),
    }
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def check_github(found: list[Row], sel: Selection) -> str:
    """GitHub Actions workflow commands: an annotation per finding and error (errors and
    what to change as errors, what needs a human as warnings)."""
    lines = []
    for row in found:
        if row.status == "ignored":
            continue
        path, line = _file_line(row)
        level = "error" if row.status in ("changed", "error") else "warning"
        what = " ".join(x for x in (row.location, row.old, f"-> {row.new}" if row.new else "") if x)
        msg = f"{what}: {advice(row, sel)}" if what else advice(row, sel)
        title = "errclass check: " + ("to change" if row.status == "changed" else row.status)
        props = f"file={_property(path)},line={line or 1},title={_property(title)}"
        lines.append(f"::{level} {props}::{_escape(msg)}\n")
    return "".join(lines)


def _escape(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(s: str) -> str:
    return _escape(s).replace(":", "%3A").replace(",", "%2C")


def needs_attention(found: list[Row]) -> bool:
    return any(r.status in ATTENTION for r in found)


__all__ = [
    "Row",
    "advice",
    "check_github",
    "check_json",
    "check_report",
    "counts",
    "diff",
    "ignored_summary",
    "needs_attention",
    "rows",
    "summary",
    "table",
]
