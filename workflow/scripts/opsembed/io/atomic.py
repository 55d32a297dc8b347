"""Atomic file writes: a failed job never leaves a partial output behind, and a killed
job's temporary file is removed when the job reruns."""

from __future__ import annotations

import contextlib
import glob
import os
import re
from pathlib import Path
from typing import Iterator


def temp_path(path: str | os.PathLike, pid: int | None = None) -> Path:
    """The hidden temporary sibling that process ``pid`` (default: this one) writes ``path``
    through: ``dir/.STEM.tmp-PID.SUFFIX``, e.g. ``crops/P1/.A1.tmp-4242.h5``."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid() if pid is None else pid}{path.suffix}")


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists; anything else: assume it may
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` (see temp_path) left by processes that are
    gone, such as a job killed by a signal, which ``atomic_path`` could not clean up.
    Those of running processes, this one included, are kept. Returns the removed paths."""
    path = Path(path)
    own = re.compile(rf"\.{re.escape(path.stem)}\.tmp-(\d+){re.escape(path.suffix)}")
    removed = []
    for name in glob.glob(glob.escape(str(path.parent / f".{path.stem}.tmp-")) + f"*{glob.escape(path.suffix)}"):
        match = own.fullmatch(os.path.basename(name))
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
                removed.append(Path(name))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The parent folder is created, and temporary files of ``path`` that dead processes left
    (a job killed mid-write) are removed first. On any exception the temporary file is
    removed and ``path`` is left untouched (absent, or its previous content). The
    temporary name keeps the suffix so that writers choosing a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
