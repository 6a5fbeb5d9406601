"""Writing files so that nothing is ever seen half-written and nothing but a regular file is replaced.

``write_atomic(path, write)`` fills a temp file next to ``path`` and renames it over ``path``.
``write_all([(path, write, binary), …])`` does that for all of a command's outputs at once: every
target is checked and every temp file filled before the first rename, so a failure while computing or
writing any output leaves every existing file untouched.

Rules, each a bug seen before (issue 14):
- only a regular file or a new path is written: a device node (``/dev/null``), FIFO, socket or folder is
  refused (a rename would replace ``/dev/null`` with a regular file, as root);
- a symbolic link is followed: its target is replaced, the link is kept;
- an existing file keeps its permission bits; a new file gets the process umask's normal mode, applied
  by the kernel when the temp file is created with mode 0666 (reading the umask needs ``os.umask``,
  which changes it process-wide and races other threads creating files);
- the temp file is removed on any exception, on SIGTERM/SIGINT while writing (main thread), and, for
  a writer killed outright (SIGKILL), by the next write to the same folder (its temp name carries the
  writer's pid).
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import threading
from pathlib import Path
from typing import IO, Callable, Iterable

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
_LIVE: set[str] = set()  # temp files being written by this process (removed on SIGTERM)
_LIVE_LOCK = threading.Lock()


class UnsafeWriteError(ValueError):
    """The target of a write is not a regular file or a new path."""


def check_target(path: str | os.PathLike) -> tuple[Path, int | None]:
    """(the path to replace — a symlink's target —, the existing file's permission bits or None for a new
    file). Raises UnsafeWriteError naming the path when it is anything but a regular file."""
    path = Path(os.path.realpath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path, None
    if not stat.S_ISREG(st.st_mode):
        what = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise UnsafeWriteError(f"refusing to write {path}: it is {what}, not a regular file")
    return path, stat.S_IMODE(st.st_mode)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove_orphans(folder: Path, name: str) -> None:
    """Temp files of ``name`` left by writers that no longer run (killed with SIGKILL)."""
    for p in folder.glob(f".{name}.*.tmp"):
        parts = p.name[len(name) + 2:].split(".")
        if len(parts) == 3 and parts[0].isdigit() and not _pid_alive(int(parts[0])):
            p.unlink(missing_ok=True)


def _open_temp(path: Path, mode: int | None) -> tuple[int, str]:
    """A new temp file next to ``path``: mode 0666 less the umask (the kernel applies it), or ``mode``."""
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        with _LIVE_LOCK:
            _LIVE.add(tmp)
        if mode is not None:
            os.fchmod(fd, mode)
        return fd, tmp


def _discard(tmp: str) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(tmp)
    Path(tmp).unlink(missing_ok=True)


class _CleanupOnSignal:
    """While active (main thread only), SIGTERM / SIGINT first remove the live temp files, then do what
    they would have done (the previous handler, or the default action: the process dies of the signal)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, sig, frame):
        with _LIVE_LOCK:
            live = list(_LIVE)
        for tmp in live:
            _discard(tmp)
        prev = self.previous.get(sig)
        if callable(prev):
            return prev(sig, frame)
        if prev == signal.SIG_IGN:
            return None
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return None

    def __exit__(self, *exc):
        for sig, prev in self.previous.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        return False


def _fill(path: Path, mode: int | None, write: Callable[[IO], object], binary: bool) -> str:
    fd, tmp = _open_temp(path, mode)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def write_all(items: Iterable[tuple[str | os.PathLike, Callable[[IO], object], bool]]) -> list[Path]:
    """Write several files as one step: check every target, fill every temp file, then rename each over
    its target. ``items``: (path, write(fh), binary). Returns the written paths (symlinks resolved)."""
    targets = [(*check_target(p), write, binary) for p, write, binary in items]
    for path, *_ in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path.parent, path.name)
    temps: list[str] = []
    with _CleanupOnSignal():
        try:
            for path, mode, write, binary in targets:
                temps.append(_fill(path, mode, write, binary))
            for (path, *_), tmp in zip(targets, temps):
                check_target(path)  # still a regular file or absent (not swapped for a device meanwhile)
                os.replace(tmp, path)
                _discard(tmp)
        except BaseException:
            for tmp in temps:
                _discard(tmp)
            raise
    return [t[0] for t in targets]


def write_atomic(path: str | os.PathLike, write: Callable[[IO], object], binary: bool = False) -> Path:
    """Write one file so that it is never seen half-written (see the module docstring for the rules):
    ``write(fh)`` fills a temp file in the same folder, which is fsynced and renamed over ``path``."""
    return write_all([(path, write, binary)])[0]
