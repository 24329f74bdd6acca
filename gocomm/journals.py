"""Which resume journal belongs to a batch file, whatever name reaches it, and its lock.

A batch file can be reached through a symlink or a hard link. A journal and a lock named after
the path would give each name its own, so two runs through two names would both send every row
and a resume through the other name would send everything again. So:

- the lock is taken on the file itself: ``flock`` holds the inode, whatever the name;
- the default journal is ``FILE.journal`` next to the file's real path (symlinks resolved);
- the journal a run used is remembered per file (device and inode) in the user's state
  directory (``$XDG_STATE_HOME/gocomm/journals``, by default ``~/.local/state/...``), with the
  file's size and modification time, so that a run through a hard link's other name finds it,
  while an edited file or a new file that reused the inode never matches an old entry.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from gocomm.errors import CommError

__all__ = ["FileLock", "journal_for", "remember_journal", "state_directory"]


class FileLock:
    """An exclusive, non-blocking lock on a file's inode, held until :meth:`release` (or the
    process ends: a killed run never leaves it held)."""

    def __init__(self, path: Path, error: type[CommError]) -> None:
        self.path = path
        self._error = error
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise self._error(f"{self.path}: cannot open: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise self._error(
                f"{self.path} is being sent by another gocomm batch (through this name or "
                "another link to the same file); wait for it to finish"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Where the journal of each batch file is remembered."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gocomm" / "journals"


def _entry_path(file: Path, state: Path) -> tuple[Path, os.stat_result]:
    info = file.stat()  # follows symlinks: the file itself
    return state / f"{info.st_dev}-{info.st_ino}.json", info


def journal_for(file: Path, state: Path) -> Path:
    """The journal of ``file``: the one its last run used if the file has not changed since,
    else ``FILE.journal`` next to its real path."""
    entry_path, info = _entry_path(file, state)
    try:
        entry = json.loads(entry_path.read_text(encoding="utf-8"))
        journal = Path(entry["journal"])
        same_file = (entry["size"], entry["mtime_ns"]) == (info.st_size, info.st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError):
        same_file = False
    if same_file and journal.exists():
        return journal
    real = file.resolve()
    return real.with_name(real.name + ".journal")


def remember_journal(file: Path, journal: Path, state: Path) -> None:
    """Record ``journal`` as the journal of ``file`` (best effort: without a writable state
    directory, links resume through the real path's journal only)."""
    try:
        entry_path, info = _entry_path(file, state)
        state.mkdir(parents=True, exist_ok=True)
        entry = {
            "journal": str(journal.resolve()),
            "size": info.st_size,
            "mtime_ns": info.st_mtime_ns,
            "file": str(file.resolve()),
        }
        temporary = entry_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entry), encoding="utf-8")
        os.replace(temporary, entry_path)
    except OSError as exc:
        logging.getLogger("gocomm.batch").warning(
            "cannot remember the journal of %s in %s (%s): a run through another hard link to "
            "it will not find %s",
            file,
            state,
            exc.strerror or exc,
            journal,
        )
