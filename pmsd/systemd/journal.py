"""A minimal sd-journal reader over libsystemd through ctypes.

pmsd reads the journal in-process: sd_journal seeks by index, so the last N lines of one unit cost the
same on a 10 MB journal as on a 10 GB one, and there is no journalctl process per app to start. pystemd
only writes to the journal, and python3-systemd/systemd-python would add a compiled dependency for the
dozen calls below (sd-journal(3)).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

SD_JOURNAL_LOCAL_ONLY = 1


class JournalError(OSError):
    pass


def _library() -> Any:
    try:
        # The stable soname: no ctypes.util.find_library(), which runs `ldconfig -p` (~10 ms per command).
        lib = ctypes.CDLL("libsystemd.so.0", use_errno=True)
    except OSError:
        from ctypes.util import find_library  # lazy: ~7 ms (it imports subprocess), for an unusual system

        lib = ctypes.CDLL(find_library("systemd") or "libsystemd.so", use_errno=True)
    handle = ctypes.c_void_p
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "sd_journal_open": (ctypes.c_int, [ctypes.POINTER(handle), ctypes.c_int]),
        "sd_journal_close": (None, [handle]),
        "sd_journal_add_match": (ctypes.c_int, [handle, ctypes.c_char_p, ctypes.c_size_t]),
        "sd_journal_add_disjunction": (ctypes.c_int, [handle]),
        "sd_journal_flush_matches": (None, [handle]),
        "sd_journal_seek_tail": (ctypes.c_int, [handle]),
        "sd_journal_seek_realtime_usec": (ctypes.c_int, [handle, ctypes.c_uint64]),
        "sd_journal_next": (ctypes.c_int, [handle]),
        "sd_journal_previous": (ctypes.c_int, [handle]),
        "sd_journal_get_realtime_usec": (ctypes.c_int, [handle, ctypes.POINTER(ctypes.c_uint64)]),
        "sd_journal_get_data": (ctypes.c_int, [handle, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                               ctypes.POINTER(ctypes.c_size_t)]),
        "sd_journal_set_data_threshold": (ctypes.c_int, [handle, ctypes.c_size_t]),
        "sd_journal_wait": (ctypes.c_int, [handle, ctypes.c_uint64]),
        "sd_journal_get_fd": (ctypes.c_int, [handle]),
        "sd_journal_process": (ctypes.c_int, [handle]),
    }
    for function, (restype, argtypes) in signatures.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    return lib


_lib: Any = None


def _check(result: int, what: str) -> int:
    if result < 0:
        raise JournalError(-result, f"{what} failed: {os.strerror(-result)}")
    return result


class Journal:
    """One sd_journal handle over the local journal files this user may read."""

    def __init__(self) -> None:
        global _lib
        if _lib is None:
            _lib = _library()
        self._lib = _lib
        self._handle = ctypes.c_void_p()
        _check(self._lib.sd_journal_open(ctypes.byref(self._handle), SD_JOURNAL_LOCAL_ONLY), "sd_journal_open")
        self._lib.sd_journal_set_data_threshold(self._handle, 0)  # whole messages, however long

    def close(self) -> None:
        if self._handle:
            self._lib.sd_journal_close(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # matches: same-field matches are ORed, different fields ANDed, disjunction() starts an OR branch
    def match(self, field: str, value: str | bytes) -> None:
        data = field.encode() + b"=" + (value if isinstance(value, bytes) else value.encode())
        _check(self._lib.sd_journal_add_match(self._handle, data, len(data)), "sd_journal_add_match")

    def disjunction(self) -> None:
        _check(self._lib.sd_journal_add_disjunction(self._handle), "sd_journal_add_disjunction")

    def flush_matches(self) -> None:
        self._lib.sd_journal_flush_matches(self._handle)

    def seek_tail(self) -> None:
        _check(self._lib.sd_journal_seek_tail(self._handle), "sd_journal_seek_tail")

    def seek_realtime(self, usec: int) -> None:
        _check(self._lib.sd_journal_seek_realtime_usec(self._handle, usec), "sd_journal_seek_realtime_usec")

    def next(self) -> bool:
        return _check(self._lib.sd_journal_next(self._handle), "sd_journal_next") > 0

    def previous(self) -> bool:
        return _check(self._lib.sd_journal_previous(self._handle), "sd_journal_previous") > 0

    def realtime_usec(self) -> int:
        usec = ctypes.c_uint64()
        _check(self._lib.sd_journal_get_realtime_usec(self._handle, ctypes.byref(usec)), "get_realtime_usec")
        return int(usec.value)

    def get(self, field: str) -> bytes | None:
        """The field's value in the current entry, or None when the entry does not have it."""
        data = ctypes.c_void_p()
        size = ctypes.c_size_t()
        result = self._lib.sd_journal_get_data(self._handle, field.encode(), ctypes.byref(data), ctypes.byref(size))
        if result < 0:
            return None
        raw = ctypes.string_at(data.value or 0, size.value)
        return raw[len(field) + 1 :]

    def wait(self, timeout_usec: int) -> int:
        """Block until the journal changes or the timeout passes; SD_JOURNAL_NOP (0) on timeout."""
        return _check(self._lib.sd_journal_wait(self._handle, timeout_usec), "sd_journal_wait")

    def fileno(self) -> int:
        """A descriptor that becomes readable when the journal changes, for select()/poll() (sd_journal_get_fd(3));
        after it was, process() before reading on. journald signals changes at most every 250 ms."""
        return _check(self._lib.sd_journal_get_fd(self._handle), "sd_journal_get_fd")

    def process(self) -> int:
        """Take note of what woke fileno() (new entries, new or rotated files); SD_JOURNAL_NOP (0) if nothing."""
        return _check(self._lib.sd_journal_process(self._handle), "sd_journal_process")
