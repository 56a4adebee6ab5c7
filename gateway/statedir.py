"""The state directory: private to the gateway's user, and used by one gateway at a time.

``state_dir`` holds the event journal and the outbox: every alert, command and
silence, and readings not yet in InfluxDB. :meth:`StateDir.claim`, the first
thing ``outpost run`` does, before any connection:

- refuses a world-writable directory (anyone could plant or swap the files the
  gateway replays at start);
- creates it, or tightens it, to mode 0700, and every file in it to 0600 (files
  the gateway creates later are 0600 too: ``outpost run`` sets its umask to 077);
- takes an exclusive lock (``flock`` on ``outpost.lock``, with the holder's pid
  in it), so a second gateway started with the same config stops with
  ``another outpost (pid N) uses …`` instead of taking over the first one's
  broker sessions. The kernel drops the lock when the process ends, however it
  ends: no stale lock to clean up after a crash.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("outpost")

LOCK_FILE = "outpost.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600


class StateDirError(Exception):
    """The gateway cannot use its state directory (one line: what and what to do)."""


def world_writable(path: Path) -> str | None:
    """Why ``path`` must not be a state directory, or None when it may be."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & stat.S_IWOTH:
        return (
            f"state_dir {path} is world-writable (mode {stat.S_IMODE(mode):04o}): any local "
            f"user could replace the journal or the outbox; use a directory of the "
            f"gateway's own, or chmod 700 {path}"
        )
    return None


class StateDir:
    """An exclusive claim on a state directory; :meth:`release` (or process exit) ends it."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._fd: int | None = lock_fd

    @classmethod
    def claim(cls, state_dir: str | Path) -> StateDir:
        """Check, create or tighten, and lock ``state_dir``; raises StateDirError."""
        path = Path(state_dir).resolve()  # a symbolic link: check and lock what it points to
        problem = world_writable(path)
        if problem:
            raise StateDirError(problem)
        try:
            path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"cannot create state_dir {path}: {exc.strerror}") from None
        _tighten(path, DIR_MODE)
        fd = _lock(path)
        for folder, dirs, files in os.walk(path):  # symbolic links are not followed
            for name in dirs:
                _tighten(Path(folder, name), DIR_MODE)
            for name in files:
                _tighten(Path(folder, name), FILE_MODE)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _lock(path: Path) -> int:
    lock = path / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise StateDirError(f"cannot open {lock}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StateDirError(held_by(path, holder or "unknown")) from None
        raise StateDirError(f"cannot lock {lock}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def held_by(path: Path, pid: str) -> str:
    return (
        f"another outpost (pid {pid}) uses {path}: stop it, or give this one a state_dir of "
        f"its own (and a client_id of its own)"
    )


def holder(state_dir: str | Path) -> str | None:
    """The pid of the gateway that holds ``state_dir`` now ("unknown" when it did not
    write it), or None. Only looks: creates nothing, and holds a shared lock for the
    instant it takes to ask (a gateway claiming the directory in that instant is told
    it is in use, and exits 2)."""
    path = Path(state_dir).resolve()
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: nobody has run here; unreadable: claim() will say
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return _read_pid(fd) or "unknown"
        return None
    finally:
        os.close(fd)  # drops the shared lock
    return None


def _read_pid(fd: int) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return str(int(text))
    return None


def _tighten(path: Path, mode: int) -> None:
    """Take group and other permissions away (a file the gateway does not own is left
    as it is, with a warning: only its owner or root can change it)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return  # a link's own mode means nothing; what it points to is not ours to change
    current = stat.S_IMODE(st.st_mode)
    if current & 0o077 == 0:
        return
    try:
        os.chmod(path, current & mode)
    except PermissionError:
        log.warning(
            "%s is mode %04o and not the gateway's to change: other users can read it "
            "(chown it to the gateway's user)", path, current,
        )
        return
    log.info("%s was mode %04o: now %04o, private to the gateway's user", path, current,
             current & mode)
