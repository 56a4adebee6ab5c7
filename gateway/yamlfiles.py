"""Reading the YAML files Outpost is given: ``outpost.yaml``, rule files, rule test files.

Each is read here and parsed by :func:`rules.yamlsrc.load_yaml`, so every one is
held to the same limits (size, nesting, no aliases: see that module), and every
failure is a :class:`~rules.yamlsrc.SourceError` at ``file:line:col``:

- only a regular file is read: a FIFO or a device matched by a rule glob or named
  by ``-c`` would block the reader, or never end;
- at most :data:`~rules.yamlsrc.MAX_BYTES` + 1 bytes are read, so a huge file
  costs no memory and no time before it is refused;
- the text must be UTF-8 (the error names the line of the first bad byte).
"""

from __future__ import annotations

import os
import stat

from rules.yamlsrc import MAX_BYTES, Mark, Problem, SourceError, too_large

__all__ = ["read_text"]


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of the YAML file at ``path``; raise SourceError when it cannot be one."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _refused(name, f"cannot read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(name, "cannot read: not a regular file")
        data = _read_at_most(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise _refused(name, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise _refused(name, too_large())
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError([Problem(Mark(name, line, 1), "not UTF-8 text")]) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _refused(name: str, message: str) -> SourceError:
    return SourceError([Problem(Mark(name, 1, 1), message)])
