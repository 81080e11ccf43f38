"""Files: discovery, planning one file (sites -> edits -> verified new text), and
writing every changed file atomically, all or none."""

from __future__ import annotations

import bisect
import os
import re
import shutil
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from errclass import _atomic
from errclass.migrate._documents import DocumentError, load
from errclass.migrate._expr import ExprResult, Finding, Memo, apply_edits, migrate_expr
from errclass.migrate._formats import EMPTY, NOT_PROMQL, extract
from errclass.migrate._semantics import Selection
from errclass.migrate._sites import (
    EncodeError,
    Site,
    raw_edits,
    reads_back,
    value_offsets,
)

SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
SNIFF = "sniff"  # a file without an extension: its content decides
_NEWLINE = re.compile("\n")
Edit = tuple[int, int, str]
# A LogQL pipeline after a stream selector: what makes a Loki query fail to parse as PromQL.
_LOGQL = re.compile(
    r"\}\s*(?:\|[=~>]|![=~]\s*[\"`]|\|\s*(?:json|logfmt|pattern|regexp|unpack"
    r"|line_format|label_format|drop|keep|decolorize|unwrap)\b)"
)


@dataclass
class FileResult:
    path: Path
    text: str = ""
    new_text: str = ""
    formats: list[str] = field(default_factory=list)
    error: str = ""  # unreadable / invalid: exit status 2
    notes: list[str] = field(default_factory=list)  # skipped documents, files
    sites: list[tuple[Site, ExprResult]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # queries that are not PromQL
    edits: list[Edit] = field(default_factory=list, repr=False)  # from text to new_text
    _lines: list[int] | None = field(default=None, repr=False)

    @property
    def changed(self) -> bool:
        return self.new_text != self.text

    def line(self, offset: int) -> int:
        if self._lines is None:
            self._lines = [m.start() for m in _NEWLINE.finditer(self.text)]
        return bisect.bisect_left(self._lines, offset) + 1


def discover(paths: Iterable[Path]) -> Iterator[tuple[Path, str | OSError | None]]:
    """(file, kind) for each named file and each file under a directory (hidden files
    and directories aside): kind "json" or "yaml" by the extension, "sniff" without
    one, None for a file of another type (listed as ignored)."""
    for p in paths:
        if p.is_dir():
            unreadable: list[OSError] = []
            for root, dirs, files in os.walk(p, onerror=unreadable.append):
                yield from ((Path(e.filename), e) for e in unreadable)
                unreadable.clear()
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root, name), _kind(name)
            yield from ((Path(e.filename), e) for e in unreadable)
        else:
            yield p, _kind(p.name)


def _kind(name: str) -> str | None:
    suffix = Path(name).suffix.lower()
    return SUFFIXES.get(suffix) if suffix else SNIFF


def plan_paths(paths: Iterable[Path], sel: Selection) -> list[FileResult]:
    memo: Memo = {}  # one run: an expression met again in any file is not planned again
    return [plan_file(p, kind, sel, memo) for p, kind in discover(paths)]


def plan_file(
    path: Path, kind: str | OSError | None, sel: Selection, memo: Memo | None = None
) -> FileResult:
    result = FileResult(path)
    if isinstance(kind, OSError):  # a directory the walk could not list
        result.error = f"cannot read this directory: {kind.strerror or kind}"
        return result
    if kind is None:
        result.notes.append("not a .json, .yaml or .yml file: skipped")
        return result
    try:
        data = _read(path)
    except OSError as e:
        result.error = f"cannot read: {e.strerror or e}"
        return result
    if isinstance(data, str):
        result.notes.append(f"not a regular file ({data}): skipped")
        return result
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if kind == SNIFF:
            result.notes.append("no extension, not a dashboard or rule file: skipped")
        else:
            result.error = f"not UTF-8 at byte {e.start}"
        return result
    if kind != SNIFF:
        return plan_text(text, kind, sel, result, memo)
    # JSON if it starts like a JSON object or array, else YAML; not ours: listed only
    sniffed = "json" if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "[") else "yaml"
    plan_text(text, sniffed, sel, result, memo)
    if result.error or not result.formats:
        result = FileResult(path, text, text)
        result.notes.append("no extension, not a dashboard or rule file: skipped")
    return result


def _read(path: Path) -> bytes | str:
    """The bytes of *path*, or what it is when it is not a regular file (a FIFO, a
    socket, a device): opened without blocking, never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            return _WHAT.get(stat.S_IFMT(mode), "not a file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


_WHAT = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
}


def plan_text(
    text: str, kind: str, sel: Selection, result: FileResult, memo: Memo | None = None
) -> FileResult:
    """Fill *result* for *text*: every site migrated, edits verified by re-reading.
    A dashboard inside a string (a ConfigMap's data) is planned as a text of its own,
    and its edits are written into the string. *memo*: shared by the files of one run
    (by default, this text's own)."""
    result.text = result.new_text = text
    memo = {} if memo is None else memo
    try:
        view = load(text, kind)
    except DocumentError as e:
        result.error = str(e)
        return result
    found = extract(view)
    del view  # the composed document is large; sites keep all that is needed
    result.formats, result.notes = found.formats, found.notes
    result.skipped.update(found.skipped)
    edits: dict[int, list[Edit]] = {}
    by_site: dict[int, ExprResult] = {}
    inner: dict[int, list[ExprResult]] = {}  # by document site: the results inside it
    for i, site in enumerate(found.sites):
        if site.document:
            r = _document(text, site, sel, result, inner.setdefault(i, []), memo=memo)
        else:
            r = _expression(site, sel, result, memo)
        if r is None or not r.edits:
            continue
        by_site[id(site)] = r
        try:
            edits[i] = raw_edits(text, site, r.edits)
        except (EncodeError, IndexError) as e:
            _reject(r, f"cannot write the edit into this string: {e}")
    if edits:
        _apply(text, kind, found.sites, edits, result, by_site=by_site)
    for i, results in inner.items():  # a document whose edit was dropped: its queries too
        doc = by_site.get(id(found.sites[i]))
        if doc is not None and not doc.edits:
            why = doc.findings[-1].message.removeprefix("left untouched: ")
            for r in results:
                if r.edits:
                    _reject(r, why)
    return result


def _expression(site: Site, sel: Selection, result: FileResult, memo: Memo) -> ExprResult | None:
    """Migrate one site's expression (None: there is none, or it is not PromQL)."""
    expr = site.expr
    if expr is None:
        return None
    if not expr.strip():  # a placeholder target
        result.skipped[EMPTY] += 1
        return None
    if not sel.mentions(expr):  # cannot need a change: not even parsed
        r = ExprResult(expr, expr)
    else:
        r = migrate_expr(
            expr,
            sel,
            alert=site.alert,
            threshold_elsewhere=site.threshold_elsewhere,
            ratio=site.ratio,
            series=site.series,
            memo=memo,
        )
        if any(f.message.startswith("not valid PromQL") for f in r.findings) and _LOGQL.search(
            expr
        ):
            result.skipped[NOT_PROMQL] += 1  # a Loki query with no datasource saying so
            return None
    result.sites.append((site, r))
    return r


def _document(
    text: str,
    site: Site,
    sel: Selection,
    result: FileResult,
    inner: list[ExprResult],
    *,
    memo: Memo,
) -> ExprResult | None:
    """Plan the JSON or YAML document in *site*'s string; its queries are reported in the
    file, at their place in the string. Returns the document's edit as one result."""
    doc = plan_text(site.value, site.document, sel, FileResult(result.path), memo)
    if doc.error or not doc.formats:
        why = f"not valid {site.document.upper()}" if doc.error else "not a dashboard or rule file"
        result.notes.append(f"{site.location}: {why}: skipped")
        return None
    result.formats += doc.formats
    result.notes += [f"{site.location}: {n}" for n in doc.notes]
    result.skipped.update(doc.skipped)
    try:
        place = value_offsets(text, site)
    except EncodeError:  # cannot place them in the string: report them at its start

        def place(_: int) -> int:
            return site.start

    for s, r in doc.sites:
        result.sites.append((s.within(site, place), r))
        inner.append(r)
    return ExprResult(site.value, doc.new_text, list(doc.edits))


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
    edits: dict[int, list[Edit]],
    result: FileResult,
    *,
    by_site: dict[int, ExprResult],
) -> None:
    if _each_reads_back(text, sites, edits, by_site) or _verified(
        text, kind, sites, edits, by_site
    ):
        result.edits = [e for es in edits.values() for e in es]
        result.new_text = apply_edits(text, result.edits)
        return
    # Something went wrong in the file as a whole: keep only edits that verify alone.
    good: dict[int, list[tuple[int, int, str]]] = {}
    for i, es in edits.items():
        if _verified(text, kind, sites, {i: es}, by_site):
            good[i] = es
        else:
            _reject(by_site[id(sites[i])], "the file did not read back as intended")
    if good and _verified(text, kind, sites, good, by_site):
        result.edits = [e for es in good.values() for e in es]
        result.new_text = apply_edits(text, result.edits)
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
    todo = _one_per_file([r for r in results if r.changed])
    for r in todo:
        current = r.path.read_bytes()
        if current != r.text.encode("utf-8"):
            raise WriteError(f"{r.path} changed since it was read: nothing written")
        if backup and _backup(r.path).exists():
            raise WriteError(f"{_backup(r.path)} already exists: nothing written")
    try:
        # Through a symbolic link to its target, as editors write: the link stays a link.
        staged = _atomic.stage((_target(r.path), r.new_text.encode("utf-8"), None) for r in todo)
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
        _atomic.commit(staged, restore={_target(r.path): r.text.encode("utf-8") for r in todo})
    except _atomic.ReplaceError as e:
        raise WriteError(f"nothing written (restored {e.replaced} file(s)): {e}") from e
    return [r.path for r in todo]


def _target(path: Path) -> Path:
    """The file *path* names, symbolic links followed (the temp file goes beside it)."""
    return Path(os.path.realpath(path))


def _one_per_file(todo: list[FileResult]) -> list[FileResult]:
    """*todo* with each file once: a link and its target (both found in a folder) are
    one file, written once when they agree; otherwise nothing is written."""
    by_target: dict[Path, FileResult] = {}
    for r in todo:
        first = by_target.setdefault(_target(r.path), r)
        if first is not r and first.new_text != r.new_text:
            raise WriteError(
                f"{first.path} and {r.path} are the same file with different edits: nothing written"
            )
    return list(by_target.values())


def _backup(path: Path) -> Path:
    return path.with_name(path.name + ".bak")
