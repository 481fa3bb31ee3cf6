"""CPU figures for a unit when systemd cannot give them.

On hybrid-cgroup hosts (cpu and cpuacct v1 controllers mounted separately) systemd reports CPUUsageNSec as
unset. pmsd then sums utime+stime over the processes of the unit's cgroup, read straight from /proc: the
same numbers psutil would return, without its import cost on every `pmsd ls`.
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")
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


def unit_cpu_seconds(control_group: str, main_pid: int) -> float:
    pids = cgroup_pids(control_group) if control_group else []
    return sum(cpu_seconds(pid) for pid in (pids or ([main_pid] if main_pid else [])))
