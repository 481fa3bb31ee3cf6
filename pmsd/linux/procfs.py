"""CPU figures for a unit when systemd cannot give them.

On hybrid-cgroup hosts (cpu and cpuacct v1 controllers mounted separately) systemd reports CPUUsageNSec as
unset. pmsd then sums utime+stime over the processes of the unit's cgroup, read straight from /proc: the
same numbers psutil would return, without its import cost on every `pmsd ls`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CGROUP_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup")


def _v2_controllers(root: str) -> frozenset[str] | None:
    """The controllers of a cgroup v2 hierarchy mounted at root; None where none is mounted there."""
    try:
        with open(f"{root}/cgroup.controllers") as handle:
            return frozenset(handle.read().split())
    except OSError:
        return None


# Read once per process: which files can hold a unit's memory and CPU figures (a unit's own files need not exist:
# a controller not enabled for it).
_V2_CONTROLLERS = _v2_controllers("/sys/fs/cgroup")
_HAS_V2_MEMORY = _V2_CONTROLLERS is not None and "memory" in _V2_CONTROLLERS
_HAS_V1_MEMORY = os.path.isdir("/sys/fs/cgroup/memory")
# cpu.stat's usage_usec needs no controller: every v2 cgroup has it (cgroup-v2.rst, "Core Interface Files"). A
# hybrid host mounts the v2 hierarchy at /sys/fs/cgroup/unified, where systemd keeps each unit's cgroup too; there
# systemd reads v1's cpuacct.usage, which user units lack, so it reports no CPUUsageNSec (unit_get_cpu_usage_raw(),
# src/core/cgroup.c). One cpu.stat then replaces the unit's cgroup.procs plus a /proc/PID/stat per process.
_CPU_STAT_ROOT = next((root for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
                       if _v2_controllers(root) is not None), None)


# Reads a small kernel file: read_file, or a pmsd.linux.heldfiles.HeldFiles' read (god's, kept open)
FileReader = Callable[[str], bytes | None]

_found_root: list[str] = []  # the root where cgroup.procs was last found: tried first next time


def read_file(path: str) -> bytes | None:
    """A small kernel file's bytes, None when it cannot be read: os.open/os.read rather than open(), which is
    3 times slower, and `pmsd ls` of 1,000 apps reads 3,000 of them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)


def cgroup_pids(control_group: str) -> list[int]:
    for root in (*_found_root, *_CGROUP_ROOTS):
        content = read_file(f"{root}{control_group}/cgroup.procs")
        if content is None:
            continue
        _found_root[:] = [root]
        return [int(line) for line in content.split()]
    return []


def usage(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds) of a process from one read of /proc/PID/stat (rss is field 24, the figure
    statm gives as resident; proc(5)): `pmsd ls` of 1,000 apps without memory cgroups reads 1,000 files fewer.
    (0, 0.0) for a process that is gone."""
    content = read_file(f"/proc/{pid}/stat")
    try:
        fields = content.rsplit(b")", 1)[1].split() if content is not None else []
        return int(fields[21]) * _PAGE, (int(fields[11]) + int(fields[12])) / _TICKS
    except (IndexError, ValueError):
        return 0, 0.0


def rss_bytes(pid: int) -> int:
    content = read_file(f"/proc/{pid}/statm")
    try:
        return int(content.split()[1]) * _PAGE if content is not None else 0  # resident pages (proc(5))
    except (IndexError, ValueError):
        return 0


def unit_pids(control_group: str, main_pid: int) -> list[int]:
    """The unit's processes (its cgroup's), or its main process where the cgroup cannot be read."""
    pids = cgroup_pids(control_group) if control_group else []
    return pids or ([main_pid] if main_pid else [])


def unit_rss_bytes(control_group: str, main_pid: int) -> int:
    """The resident memory of the unit's processes, for hosts where systemd has no MemoryCurrent (the memory
    controller not enabled for the unit, e.g. user units on cgroup v1 hosts). Shared pages count once per
    process, as PM2's per-process figure does."""
    return sum(rss_bytes(pid) for pid in unit_pids(control_group, main_pid))


def unit_open_fds(control_group: str, main_pid: int) -> int | None:
    """The file descriptors the unit's processes hold together (/proc/<pid>/fd, proc(5)); None when one of them
    cannot be read (another user's process, a non-dumpable one) or the unit has no process: a partial sum
    would pass for the whole."""
    pids = unit_pids(control_group, main_pid)
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except FileNotFoundError:
            continue  # it exited since the cgroup was listed
        except OSError:
            return None
    return total if pids else None


def cgroup_memory_current(control_group: str, read: FileReader = read_file) -> int | None:
    """The file systemd reads for MemoryCurrent (unit_get_memory_current(), src/core/cgroup.c): memory.current on
    cgroup v2, memory.usage_in_bytes in the v1 memory hierarchy; either exists only where the unit has a
    memory cgroup of its own. None elsewhere, where systemd has no figure either."""
    if not control_group:
        return None
    if _HAS_V2_MEMORY:
        current = _int_of(read(f"/sys/fs/cgroup{control_group}/memory.current"))
        if current is not None:
            return current
    return _int_of(read(f"/sys/fs/cgroup/memory{control_group}/memory.usage_in_bytes")) if _HAS_V1_MEMORY else None


def cgroup_cpu_usage_nsec(control_group: str, read: FileReader = read_file) -> int | None:
    """usage_usec of the unit's cpu.stat in the cgroup v2 hierarchy (the host's only one, or a hybrid host's), in
    ns: what systemd reports as CPUUsageNSec on a cgroup v2 host. None where there is no such file."""
    if not control_group or _CPU_STAT_ROOT is None:
        return None
    content = read(f"{_CPU_STAT_ROOT}{control_group}/cpu.stat") or b""
    for line in content.splitlines():
        key, _, value = line.partition(b" ")
        if key == b"usage_usec":
            return int(value) * 1000
    return None


def _int_of(content: bytes | None) -> int | None:
    try:
        return int(content) if content is not None else None
    except ValueError:
        return None
