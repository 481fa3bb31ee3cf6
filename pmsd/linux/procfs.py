"""CPU figures for a unit when systemd cannot give them.

On hybrid-cgroup hosts (cpu and cpuacct v1 controllers mounted separately) systemd reports CPUUsageNSec as
unset. pmsd then sums utime+stime over the processes of the unit's cgroup, read straight from /proc: the
same numbers psutil would return, without its import cost on every `pmsd ls`.
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CGROUP_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup")


def cgroup_pids(control_group: str) -> list[int]:
    for root in _CGROUP_ROOTS:
        try:
            with open(f"{root}{control_group}/cgroup.procs") as handle:
                return [int(line) for line in handle if line.strip()]
        except OSError:
            continue
    return []


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            # Fields after the parenthesised comm (which may hold spaces): utime is field 14, stime 15.
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE  # resident pages (proc(5), /proc/pid/statm)
    except (OSError, IndexError, ValueError):
        return 0


def _unit_pids(control_group: str, main_pid: int) -> list[int]:
    pids = cgroup_pids(control_group) if control_group else []
    return pids or ([main_pid] if main_pid else [])


def unit_cpu_seconds(control_group: str, main_pid: int) -> float:
    return sum(cpu_seconds(pid) for pid in _unit_pids(control_group, main_pid))


def unit_rss_bytes(control_group: str, main_pid: int) -> int:
    """The resident memory of the unit's processes, for hosts where systemd has no MemoryCurrent (the memory
    controller not enabled for the unit, e.g. user units on cgroup v1 hosts). Shared pages count once per
    process, as PM2's per-process figure does."""
    return sum(rss_bytes(pid) for pid in _unit_pids(control_group, main_pid))


def cgroup_memory_current(control_group: str) -> int | None:
    """The file systemd reads for MemoryCurrent (unit_get_memory_current(), src/core/cgroup.c): memory.current on
    cgroup v2, memory.usage_in_bytes in the v1 memory hierarchy; either exists only where the unit has a
    memory cgroup of its own. None elsewhere, where systemd has no figure either."""
    if not control_group:
        return None
    current = _read_int(f"/sys/fs/cgroup{control_group}/memory.current")
    return current if current is not None else _read_int(f"/sys/fs/cgroup/memory{control_group}/memory.usage_in_bytes")


def cgroup_cpu_usage_nsec(control_group: str) -> int | None:
    """usage_usec of the unit's cpu.stat (cgroup v2), in ns: what systemd reports as CPUUsageNSec."""
    if not control_group:
        return None
    try:
        with open(f"/sys/fs/cgroup{control_group}/cpu.stat") as handle:
            for line in handle:
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) * 1000
    except (OSError, ValueError):
        return None
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None
