"""Files: discovery, planning one file (sites -> edits -> verified new text), and
writing every changed file atomically, all or none."""

from __future__ import annotations

import bisect
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from errclass import _atomic
from errclass.migrate._documents import DocumentError, load
from errclass.migrate._expr import ExprResult, Finding, apply_edits, migrate_expr
from errclass.migrate._formats import extract
from errclass.migrate._semantics import Selection
from errclass.migrate._sites import EncodeError, Site, raw_edits, reads_back

SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_NEWLINE = re.compile("\n")


@dataclass
class FileResult:
    path: Path
    text: str = ""
    new_text: str = ""
    formats: list[str] = field(default_factory=list)
    error: str = ""  # unreadable / invalid: exit status 2
    notes: list[str] = field(default_factory=list)  # skipped documents, files
    sites: list[tuple[Site, ExprResult]] = field(default_factory=list)
    _lines: list[int] | None = field(default=None, repr=False)

    @property
    def changed(self) -> bool:
        return self.new_text != self.text

    def line(self, offset: int) -> int:
        if self._lines is None:
            self._lines = [m.start() for m in _NEWLINE.finditer(self.text)]
        return bisect.bisect_left(self._lines, offset) + 1


def discover(paths: Iterable[Path]) -> Iterator[tuple[Path, str | None]]:
    """(file, kind) for each named file and each .json/.yaml/.yml file under a directory;
    kind is None for a named file of another type (reported as skipped)."""
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    kind = SUFFIXES.get(Path(name).suffix.lower())
                    if kind:
                        yield Path(root, name), kind
        else:
            yield p, SUFFIXES.get(p.suffix.lower())


def plan_paths(paths: Iterable[Path], sel: Selection) -> list[FileResult]:
    return [plan_file(p, kind, sel) for p, kind in discover(paths)]


def plan_file(path: Path, kind: str | None, sel: Selection) -> FileResult:
    result = FileResult(path)
    if kind is None:
        result.notes.append("not a .json, .yaml or .yml file: skipped")
        return result
    try:
        data = path.read_bytes()
    except OSError as e:
        result.error = f"cannot read: {e.strerror or e}"
        return result
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        result.error = f"not UTF-8 at byte {e.start}"
        return result
    plan_text(text, kind, sel, result)
    return result


def plan_text(text: str, kind: str, sel: Selection, result: FileResult) -> FileResult:
    """Fill *result* for *text*: every site migrated, edits verified by re-reading."""
    result.text = result.new_text = text
    try:
        view = load(text, kind)
    except DocumentError as e:
        result.error = str(e)
        return result
    found = extract(view)
    del view  # the composed document is large; sites keep all that is needed
    result.formats, result.notes = found.formats, found.notes
    edits: dict[int, list[tuple[int, int, str]]] = {}
    for i, site in enumerate(found.sites):
        expr = site.expr
        if expr is None:
            continue
        if not sel.mentions(expr):  # cannot need a change: not even parsed
            result.sites.append((site, ExprResult(expr, expr)))
            continue
        r = migrate_expr(
            expr,
            sel,
            alert=site.alert,
            threshold_elsewhere=site.threshold_elsewhere,
            ratio=site.ratio,
            series=site.series,
        )
        result.sites.append((site, r))
        if r.edits:
            try:
                edits[i] = raw_edits(text, site, r.edits)
            except (EncodeError, IndexError) as e:
                _reject(r, f"cannot write the edit into this string: {e}")
    if edits:
        _apply(text, kind, found.sites, edits, result)
    return result


def _expected(site: Site, r: ExprResult) -> str:
    a, b = site.sub or (0, len(site.value))
    if a == 0 and b == len(site.value):
        return r.new_text  # the whole value is the expression
    return site.value[:a] + r.new_text + site.value[b:]


def _reject(r: ExprResult, why: str) -> None:
    r.findings[:] = [f for f in r.findings if not f.of_edit]
    r.findings.append(Finding("skipped", f"left untouched: {why}"))
    r.new_text, r.edits = r.text, []


def _apply(
    text: str,
    kind: str,
    sites: list[Site],
    edits: dict[int, list[tuple[int, int, str]]],
    result: FileResult,
) -> None:
    by_site = {id(s): r for s, r in result.sites}
    if _each_reads_back(text, sites, edits, by_site) or _verified(
        text, kind, sites, edits, by_site
    ):
        result.new_text = apply_edits(text, [e for es in edits.values() for e in es])
        return
    # Something went wrong in the file as a whole: keep only edits that verify alone.
    good: dict[int, list[tuple[int, int, str]]] = {}
    for i, es in edits.items():
        if _verified(text, kind, sites, {i: es}, by_site):
            good[i] = es
        else:
            _reject(by_site[id(sites[i])], "the file did not read back as intended")
    if good and _verified(text, kind, sites, good, by_site):
        result.new_text = apply_edits(text, [e for es in good.values() for e in es])
        return
    for i in good:
        _reject(by_site[id(sites[i])], "the file did not read back as intended")


def _each_reads_back(
    text: str,
    sites: list[Site],
    edits: dict[int, list[tuple[int, int, str]]],
    by_site: dict[int, ExprResult],
) -> bool:
    """The cheap check: each edited literal, read alone in the same context as the
    original, gives the intended value (only sound where the context is the same)."""
    literals = []
    for i, es in edits.items():
        s = sites[i]
        if any(a < s.start or b > s.end for a, b, _ in es):
            return False
        raw = text[s.start : s.end]
        new_raw = apply_edits(raw, [(a - s.start, b - s.start, new) for a, b, new in es])
        literals.append((s, new_raw, _expected(s, by_site[id(s)])))
    return reads_back(text, literals)


def _verified(
    text: str,
    kind: str,
    sites: list[Site],
    edits: dict[int, list[tuple[int, int, str]]],
    by_site: dict[int, ExprResult],
) -> bool:
    """Re-read the edited file: same sites at the same places, values as intended."""
    for i, es in edits.items():
        s = sites[i]
        if any(a < s.start or b > s.end for a, b, _ in es):
            return False
    try:
        new_text = apply_edits(text, [e for es in edits.values() for e in es])
        again = extract(load(new_text, kind)).sites
    except (DocumentError, ValueError):
        return False
    if len(again) != len(sites):
        return False
    for i, (old, new) in enumerate(zip(sites, again, strict=True)):
        want = old.value
        if i in edits:
            want = _expected(old, by_site[id(old)])
        if new.location != old.location or new.value != want:
            return False
    return True


# --- writing -----------------------------------------------------------------------


class WriteError(OSError):
    """Nothing was written (or everything written was restored)."""


def write_all(results: list[FileResult], backup: bool = False) -> list[Path]:
    """Write every changed file atomically: all of them or none. Returns the paths."""
    todo = [r for r in results if r.changed]
    for r in todo:
        current = r.path.read_bytes()
        if current != r.text.encode("utf-8"):
            raise WriteError(f"{r.path} changed since it was read: nothing written")
        if backup and _backup(r.path).exists():
            raise WriteError(f"{_backup(r.path)} already exists: nothing written")
    try:
        staged = _atomic.stage((r.path, r.new_text.encode("utf-8"), None) for r in todo)
        try:
            if backup:
                for r in todo:
                    shutil.copy2(r.path, _backup(r.path))
        except OSError:
            _atomic.discard(staged)
            raise
    except OSError as e:
        raise WriteError(f"nothing written: {e}") from e
    try:  # put back what was already replaced if a rename fails
        _atomic.commit(staged, restore={r.path: r.text.encode("utf-8") for r in todo})
    except _atomic.ReplaceError as e:
        raise WriteError(f"nothing written (restored {e.replaced} file(s)): {e}") from e
    return [r.path for r in todo]


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".bak")
