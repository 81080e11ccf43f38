"""Issue 13, `errclass migrate` / `check`: hostile files and file systems. Each is run
through the CLI as a subprocess: exit 2 and a message naming the file, no traceback,
no hang, nothing written; non-regular files are skipped and said so; --write goes
through a symbolic link to its target."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, require_tool

CORPUS = ROOT / "tests" / "fixtures" / "hostile" / "migrate"
TIMEOUT = 10  # seconds; each is decided in well under one
EXPR = 'sum(rate(m{reason=\\"write_failed\\"}[5m]))'
DASHBOARD = '{"title": "d", "panels": [{"type": "timeseries", "targets": [{"expr": "%s"}]}]}\n'


def cli(*args: str | Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "errclass", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=ROOT,
    )


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under *folder*: file bytes, or where a link points."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


def assert_refused(r: subprocess.CompletedProcess[str], *names: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for name in names:
        assert name in r.stderr, r.stderr


def _big_int(path: Path) -> None:
    path.write_text(DASHBOARD.replace("}\n", ', "version": %s}\n') % (EXPR, "9" * 5_000))


def _deep_yaml(path: Path) -> None:
    path.write_text("panels: " + "[" * 100_000 + "]" * 100_000 + "\n")


COMMITTED = {
    "recursive-alias.yaml": "a recursive alias",
    "alias-bomb.yaml": "aliases expand this document to more than 1,000,000 values",
    "duplicate-keys.json": "the key 'targets' appears twice",
    "duplicate-keys.yaml": "the key 'expr' appears twice",
}
GENERATED = {
    "big-int.json": (_big_int, "a number of 5,000 digits"),
    "deep.yaml": (_deep_yaml, "invalid YAML"),
}


def test_the_committed_corpus_is_complete() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(COMMITTED)


def _hostile(name: str, tmp_path: Path) -> tuple[Path, str]:
    if name in COMMITTED:
        shutil.copy(CORPUS / name, tmp_path / name)
        return tmp_path / name, COMMITTED[name]
    write, says = GENERATED[name]
    write(tmp_path / name)
    return tmp_path / name, says


@pytest.mark.parametrize("command", ["check", "migrate --write"])
@pytest.mark.parametrize("name", sorted([*COMMITTED, *GENERATED]))
def test_a_hostile_file_is_refused(name: str, command: str, tmp_path: Path) -> None:
    path, says = _hostile(name, tmp_path)
    before = snapshot(tmp_path)
    r = cli(*command.split(), "--metric", "m", path)
    assert_refused(r, str(path), says)
    assert snapshot(tmp_path) == before  # nothing written


def test_duplicate_json_keys_are_never_edited_and_reported_changed(tmp_path: Path) -> None:
    # The edit used to go into the first "targets", which every JSON loader drops.
    path, _ = _hostile("duplicate-keys.json", tmp_path)
    r = cli("migrate", "--metric", "m", path)
    assert "changed" not in r.stdout.replace("0 changed", "")
    assert r.returncode == 2


# -- the file system --------------------------------------------------------------------------


def test_a_fifo_in_the_folder_is_skipped_and_said_so(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(DASHBOARD % EXPR)
    os.mkfifo(tmp_path / "pipe.json")
    os.mkfifo(tmp_path / "pipe")  # no extension: would be sniffed
    for args in (("check", tmp_path), ("check", tmp_path / "pipe.json")):
        r = cli(*args[:1], "--metric", "m", *args[1:])  # a hang fails on the timeout
        assert "Traceback" not in r.stderr
        assert "not a regular file (a FIFO)" in r.stdout, r.stdout
    r = cli("check", "--metric", "m", tmp_path)
    assert "2 ignored" in r.stdout
    (tmp_path / "pipe.json").unlink()
    (tmp_path / "pipe").unlink()
    assert r.returncode == cli("check", "--metric", "m", tmp_path).returncode == 0


def _link_pair(tmp_path: Path) -> tuple[Path, Path]:
    real = tmp_path / "real"
    real.mkdir()
    target = real / "d.json"
    target.write_text(DASHBOARD % EXPR)
    link = tmp_path / "link.json"
    link.symlink_to(Path("real") / "d.json")
    return link, target


def test_write_on_a_symlink_writes_through_to_its_target(tmp_path: Path) -> None:
    link, target = _link_pair(tmp_path)
    r = cli("migrate", "--write", "--metric", "m", link)
    assert r.returncode in (0, 1), r.stderr
    assert "wrote 1 file(s)" in r.stdout
    assert link.is_symlink()
    assert os.readlink(link) == str(Path("real") / "d.json")
    assert 'reason=~\\"write_failed|client_gone\\"' in target.read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["d.json"]  # no temp left


def test_write_on_a_folder_with_a_link_and_its_target_writes_once(tmp_path: Path) -> None:
    link, target = _link_pair(tmp_path)
    r = cli("migrate", "--write", "--metric", "m", tmp_path)
    assert "wrote 1 file(s)" in r.stdout, r.stdout + r.stderr
    assert link.is_symlink()
    assert 'reason=~\\"write_failed|client_gone\\"' in target.read_text()
    again = cli("migrate", "--metric", "m", tmp_path)
    assert again.returncode == 0, again.stdout  # nothing left to change


def test_a_dangling_symlink_is_a_file_error(tmp_path: Path) -> None:
    (tmp_path / "gone.json").symlink_to(tmp_path / "nowhere.json")
    r = cli("migrate", "--write", "--metric", "m", tmp_path)
    assert_refused(r, str(tmp_path / "gone.json"), "cannot read")


def test_a_directory_that_cannot_be_listed_is_an_error_naming_it(tmp_path: Path) -> None:
    # Root ignores permission bits, but no one can list a directory whose path is longer
    # than PATH_MAX (4096 bytes on Linux): os.scandir fails with ENAMETOOLONG.
    (tmp_path / "d.json").write_text(DASHBOARD % EXPR)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(20):
            os.mkdir("d" * 250, dir_fd=fd)
            new = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
    finally:
        os.close(fd)
    r = cli("check", "--metric", "m", tmp_path)
    assert_refused(r, f"errclass: {tmp_path}/ddd", "cannot read this directory")
    assert "File name too long" in r.stderr


# Root without the capabilities that let it read through permission bits.
NO_DAC = (
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
)


def test_a_directory_without_read_permission_is_an_error_naming_it(tmp_path: Path) -> None:
    # Root reads through permission bits: as root the CLI runs under setpriv without
    # CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so the bits apply to it as to anyone.
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        prefix = (require_tool("setpriv"), *NO_DAC, "--")  # util-linux
    (tmp_path / "d.json").write_text(DASHBOARD % EXPR)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "x.json").write_text(DASHBOARD % EXPR)
    locked.chmod(0o000)
    try:
        r = cli("check", "--metric", "m", tmp_path, prefix=prefix)
    finally:
        locked.chmod(0o755)
    assert_refused(r, f"{locked}: cannot read this directory: Permission denied")
