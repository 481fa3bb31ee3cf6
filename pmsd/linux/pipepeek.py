"""Look at what a pipe holds without taking it (tee(2)), then take exactly what was used.

god writes an app's log lines from a pipe systemd holds: reading the pipe first and writing the files after
would lose what was read if god were killed in between. With a peek, the lines stay in the pipe until they
are in the files; a kill -9 in the few microseconds between the write and the taking can repeat lines, never
lose them. Linux only (tee(2), since 2.6.17); Python's os module has splice() but not tee().
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os

_libc = ctypes.CDLL(None, use_errno=True)
_tee = _libc.tee
_tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
_tee.restype = ctypes.c_ssize_t
SPLICE_F_NONBLOCK = 2
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032
SCRATCH_SIZE = 1 << 20


class PipePeek:
    """Peeks at one source pipe through a scratch pipe of its own."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # else the default 64 KiB: smaller peeks, same result
            fcntl.fcntl(self.write_end, F_SETPIPE_SZ, SCRATCH_SIZE)
        # The most one peek returns: a partial line this long must be written as it is, or a full source pipe
        # whose first `capacity` bytes hold no newline would never be taken from.
        self.capacity = fcntl.fcntl(self.write_end, F_GETPIPE_SZ)

    def peek(self, source: int) -> bytes | None:
        """What `source` holds now (up to the scratch pipe's size), still in it; b"" when it is empty; None
        at its end (no writer left)."""
        copied = _tee(source, self.write_end, SCRATCH_SIZE, SPLICE_F_NONBLOCK)
        if copied < 0:
            code = ctypes.get_errno()
            if code == errno.EAGAIN:
                return b""
            raise OSError(code, os.strerror(code))
        if copied == 0:
            return None
        chunks, left = [], copied
        while left:
            chunk = os.read(self.read_end, left)
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def take(source: int, count: int) -> None:
        """Remove the first `count` bytes of `source` (those a peek returned and the caller has used)."""
        while count:
            count -= len(os.read(source, min(count, 1 << 20)))

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)
