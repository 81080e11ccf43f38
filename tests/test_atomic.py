"""The one atomic writer behind ``errclass render`` and ``errclass migrate --write``:
files and directories fsynced, and a failed rename undone."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from errclass import _atomic, monitoring
from errclass.migrate import Selection, plan_paths, write_all

FIXTURES = Path(__file__).parent / "fixtures" / "migrate"


def _fsynced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records what each os.fsync call syncs, then syncs it: (kind, path)."""
    seen: list[tuple[str, str]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        seen.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_render_and_migrate_fsync_each_file_and_its_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _fsynced(monkeypatch)
    written = monitoring.write(monitoring.render(), tmp_path / "out")
    assert written
    assert len([k for k, _ in seen if k == "file"]) == len(written)
    assert {p for k, p in seen if k == "dir"} == {str(p.parent) for p in written}
    seen.clear()
    rules = tmp_path / "rules" / "rules.yaml"
    rules.parent.mkdir()
    shutil.copy(FIXTURES / "rules.yaml", rules)
    assert write_all(plan_paths([rules], Selection(("stream_outcomes_total",)))) == [rules]
    assert [k for k, _ in seen] == ["file", "dir"]
    assert seen[1][1] == str(rules.parent)


def test_a_failed_rename_puts_back_what_was_replaced(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"old a\n")
    b.write_bytes(b"old b\n")
    staged = _atomic.stage([(a, b"new a\n", None), (b, b"new b\n", 0o600)])
    b.unlink()
    b.mkdir()  # a non-empty directory where b was: its rename fails
    (b / "keep").write_text("x")
    with pytest.raises(_atomic.ReplaceError) as caught:
        _atomic.commit(staged, restore={a: b"old a\n"})
    assert caught.value.replaced == 1
    assert a.read_bytes() == b"old a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temp left


def test_staging_keeps_the_targets_mode_or_sets_the_given_one(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"a")
    a.chmod(0o640)
    _atomic.commit(_atomic.stage([(a, b"A", None), (b, b"B", 0o644)]))
    assert (a.read_bytes(), stat.S_IMODE(a.stat().st_mode)) == (b"A", 0o640)
    assert (b.read_bytes(), stat.S_IMODE(b.stat().st_mode)) == (b"B", 0o644)
