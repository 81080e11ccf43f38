"""Atomic file writes for ``errclass render`` and ``errclass migrate``: every file is
staged first as a temp file beside its target (written and fsynced), then renamed over
it, and each directory is fsynced so the renames survive a crash. Imports nothing of
errclass, so the tools can share it without loading the core."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

SUFFIX = ".errclass-tmp"

Staged = list[tuple[Path, Path]]  # (temp file, target)


class ReplaceError(OSError):
    """A rename failed after *replaced* targets were renamed over (and then restored,
    where the caller gave their previous contents); the OSError is the cause."""

    def __init__(self, replaced: int, cause: OSError) -> None:
        super().__init__(str(cause))
        self.replaced = replaced


def stage(files: Iterable[tuple[Path, bytes, int | None]]) -> Staged:
    """Write each ``(target, data, mode)`` to a fsynced temp file beside its target
    (*mode* None: the target's current mode). On any failure the temp files written so
    far are removed and the error raised: no target has been touched."""
    staged: Staged = []
    try:
        for path, data, mode in files:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=SUFFIX, dir=path.parent)
            staged.append((Path(tmp), path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode if mode is not None else path.stat().st_mode & 0o7777)
    except BaseException:
        discard(staged)
        raise
    return staged


def discard(staged: Staged) -> None:
    """Remove the temp files of *staged* (what can be removed)."""
    for tmp, _ in staged:
        with contextlib.suppress(OSError):
            tmp.unlink()


def commit(staged: Staged, restore: Mapping[Path, bytes] | None = None) -> None:
    """Rename each temp file over its target, then fsync the directories. If a rename
    fails, the targets already replaced get their *restore* contents back (those given),
    the other temp files are removed, and ReplaceError is raised."""
    done = 0
    try:
        for tmp, path in staged:
            os.replace(tmp, path)
            done += 1
    except OSError as e:
        for _, path in staged[:done]:
            if restore is not None and path in restore:
                path.write_bytes(restore[path])
        discard(staged[done:])
        raise ReplaceError(done, e) from e
    for directory in dict.fromkeys(path.parent for _, path in staged):
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in *directory* durable (a no-op where directories cannot be
    opened, as on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory: nothing more to do
    finally:
        os.close(fd)
