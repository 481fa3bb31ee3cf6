"""Is the system clock synchronized? The kernel's own answer, as `timedatectl` gives it.

systemd-timedated answers NTPSynchronized= (timedatectl's "System clock synchronized") with adjtimex(2):
synchronized when the kernel's maximum error estimate is below 16 s, whichever daemon (systemd-timesyncd,
chrony, ntpd) disciplines the clock (ntp_synced() in src/timedate/timedated.c). Reading it needs no privilege
(modes 0 changes nothing) and no D-Bus connection to the system bus.
"""

from __future__ import annotations

import ctypes
import os

MAX_ERROR_UNSYNCED_US = 16_000_000  # the kernel's NTP_PHASE_LIMIT-derived "unsynchronized" ceiling (16 s)


class _Timex(ctypes.Structure):
    # struct timex (include/uapi/linux/timex.h): the fields read here, then room for the rest of it (208 bytes
    # on 64-bit architectures); ctypes aligns the longs as the C compiler does.
    _fields_ = (("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("_rest", ctypes.c_byte * 256))


def max_error_us() -> int:
    """The kernel's estimate of the clock's maximum error, in µs (adjtimex(2) `maxerror`); OSError when the
    call fails."""
    libc = ctypes.CDLL(None, use_errno=True)  # the C library this interpreter already runs with
    timex = _Timex()
    if libc.adjtimex(ctypes.byref(timex)) < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"adjtimex: {os.strerror(error)}")
    return int(timex.maxerror)


def synchronized(max_error: int) -> bool:
    return max_error < MAX_ERROR_UNSYNCED_US
