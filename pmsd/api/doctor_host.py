"""The host checks of `pmsd doctor` (pmsd.api.doctor): lingering, cgroups, journald and the clock, read from the
files systemd and the kernel keep, each path a parameter with the real one as its default."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Sequence
from typing import Protocol

from pmsd.api.report import failure_text
from pmsd.definition.settings import LOG_RATE_LIMIT_BURST, LOG_RATE_LIMIT_INTERVAL_USEC
from pmsd.errors import PmsdError
from pmsd.linux.clock import max_error_us, synchronized
from pmsd.model.doctor import Finding, Level
from pmsd.systemd.conf import (
    JOURNALD_CONF,
    JOURNALD_DROPINS,
    RATE_LIMIT_DEFAULTS,
    STORAGE_DEFAULTS,
    dropin_paths,
    read_journald,
    read_settings,
    size_bytes,
    timespan_usec,
)
from pmsd.systemd.paths import LINGER_DIR, lingering
from pmsd.systemd.states import ServiceState

CGROUP_ROOT = "/sys/fs/cgroup"
LOGIND_USERS_DIR = "/run/systemd/users"  # systemd-logind's state file of each user it tracks, by uid
PERSISTENT_JOURNAL = "/var/log/journal"
TIMESYNC_FILE = "/run/systemd/timesync/synchronized"  # touched by systemd-timesyncd at each synchronization
# Where drop-ins for user@.service are read, lowest priority first (systemd.unit(5), "Unit File Load Path").
SYSTEM_UNIT_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system", "/run/systemd/system", "/etc/systemd/system")
# The controllers whose absence changes what pmsd shows or enforces.
WANTED_CONTROLLERS = ("memory", "cpu", "pids")
CONTROLLER_EFFECTS = {
    "memory": "systemd has no MemoryCurrent for the apps: `mem` in `pmsd ls` falls back to the resident memory of "
              "each process from /proc, summed (pages shared between processes count twice), `pmsd describe` "
              "shows no memory peak, and memory_max (MemoryMax=) limits nothing",
    "cpu": "CPU limits and weights (CPUQuota=, CPUWeight= in your drop-ins) are ignored; the cpu column still "
           "works (cpu.stat needs no controller)",
    "pids": "TasksMax= limits nothing: a fork bomb in an app is not contained",
}
DELEGATE_DROPIN = "/etc/systemd/system/user@.service.d/delegate.conf"
JOURNALD_DROPIN = os.path.join(JOURNALD_DROPINS[-1], "pmsd.conf")
JOURNALD_STORAGE_DROPIN = os.path.join(JOURNALD_DROPINS[-1], "pmsd-storage.conf")
# What a full journal costs: SystemMaxUse= defaults to 10% of the file system, at most 4 GiB (journald.conf(5)).
JOURNAL_DEFAULT_SHARE = 0.10
JOURNAL_DEFAULT_CAP = 4 << 30


class ManagerLike(Protocol):
    """What the checks ask a systemd manager (pmsd.systemd.bus.Manager; fakes in tests)."""

    @property
    def version(self) -> int: ...

    def service_state(self, unit: str) -> ServiceState | None: ...


def file_fix(path: str, lines: Sequence[str], then: str) -> str:
    """A fix that writes a file: the file's content comes last, one line each, to be copied as it is."""
    return f"as root, write {path} with the lines below, then {then}:\n" + "\n".join(lines)


def scope_name(user: bool) -> str:
    return "user manager" if user else "system manager"


def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


# ---------------------------------------------------------------------------------------- linger


def check_linger(user: bool, uid: int | None = None, linger_dir: str = LINGER_DIR,
                 logind_dir: str = LOGIND_USERS_DIR) -> Finding:
    """Lingering keeps a user manager, and its apps, running without a session (logind.conf(5), loginctl(1))."""
    if not user:
        return Finding("linger", Level.OK, "not applicable: the system manager runs from boot to shutdown")
    uid = os.getuid() if uid is None else uid
    name = user_name(uid)
    if name is None:
        return Finding("linger", Level.WARN, f"uid {uid} has no passwd entry: systemd-logind cannot linger it",
                       "without lingering, your user manager and its apps end with your last session",
                       "give the user a passwd entry (useradd), then `loginctl enable-linger NAME`")
    if lingering(name, linger_dir):
        return Finding("linger", Level.OK, f"user {name} lingers: your user manager starts at boot and outlives "
                       "your sessions")
    if not os.path.exists(os.path.join(logind_dir, str(uid))):
        return Finding("linger", Level.OK, f"user {name} does not linger, but systemd-logind does not track you "
                       f"(no {os.path.join(logind_dir, str(uid))}): no login started your user manager, and no "
                       "logout stops it")
    return Finding("linger", Level.WARN, f"user {name} does not linger ({os.path.join(linger_dir, name)} is missing)",
                   f"when your last session ends (logout, SSH disconnect), systemd-logind stops user@{uid}.service "
                   "and every app pmsd started under it, and after a reboot nothing starts them (`pmsd startup` "
                   "included) until you log in",
                   f"loginctl enable-linger {name}")


# ---------------------------------------------------------------------------------------- cgroups


def cgroup_mode(cgroup_root: str = CGROUP_ROOT) -> str:
    """"unified" (cgroup v2 only), "hybrid" (v1 controllers, v2 for systemd's tracking) or "legacy" (v1)."""
    if os.path.isfile(os.path.join(cgroup_root, "cgroup.controllers")):
        return "unified"
    if os.path.isfile(os.path.join(cgroup_root, "unified", "cgroup.controllers")):
        return "hybrid"
    return "legacy"


def manager_cgroup(read: Callable[[], str], user: bool, uid: int) -> str:
    """The manager's own cgroup, as `read` gets it (its ControlGroup property): the user manager's
    user@UID.service, "" for the system manager's root. Where the manager cannot say, the path logind gives it."""
    try:
        return read()
    except PmsdError:
        return f"/user.slice/user-{uid}.slice/user@{uid}.service" if user else ""


def check_cgroup(control_group: Callable[[], str], user: bool, uid: int | None = None,
                 cgroup_root: str = CGROUP_ROOT) -> Finding:
    """cgroup v2, and the controllers the manager's cgroup (`control_group()`) has: what it may give its units."""
    uid = os.getuid() if uid is None else uid
    mode = cgroup_mode(cgroup_root)
    if mode != "unified":
        why = f"on cgroup v1 systemd delegates no controller to a user manager, so {CONTROLLER_EFFECTS['memory']}; " \
            if user else ""
        return Finding("cgroup", Level.WARN, f"cgroup v1 ({mode} hierarchy)",
                       f"{why}systemd 256 and later refuse to boot on cgroup v1 by default",
                       "boot with cgroup v2: add `systemd.unified_cgroup_hierarchy=1` to the kernel command line "
                       "(GRUB_CMDLINE_LINUX in /etc/default/grub, then `update-grub` and reboot); in a container, "
                       "the host decides")
    group = manager_cgroup(control_group, user, uid)
    path = os.path.join(cgroup_root, group.lstrip("/"), "cgroup.controllers")
    with open(path, encoding="utf-8") as file:
        controllers = file.read().split()
    missing = [name for name in WANTED_CONTROLLERS if name not in controllers]
    found = f"cgroup v2; {scope_name(user)}'s cgroup {group or '/'} has: {' '.join(controllers) or 'no controller'}"
    if not missing:
        return Finding("cgroup", Level.OK, found)
    why = "; ".join(f"without {name}: {CONTROLLER_EFFECTS[name]}" for name in missing)
    with open(os.path.join(cgroup_root, "cgroup.controllers"), encoding="utf-8") as file:
        in_kernel = file.read().split()
    absent = [name for name in missing if name not in in_kernel]
    if absent:
        fix = (f"the kernel has {' '.join(absent)} off: remove `cgroup_disable={','.join(absent)}` from the kernel "
               "command line (/proc/cmdline shows it; on Raspberry Pi OS add `cgroup_enable=memory` to "
               "/boot/firmware/cmdline.txt), then reboot")
    elif user:
        fix = file_fix(DELEGATE_DROPIN, ["[Service]", "Delegate=cpu cpuset io memory pids"],
                       "`systemctl daemon-reload`, and log out and in again (or `systemctl restart "
                       f"user@{uid}.service`, which stops your apps: `pmsd save` before, `pmsd resurrect` after)")
    else:
        fix = (f"the system manager's cgroup {group} lacks what the host has (a container?): the host must delegate "
               "the controllers to it (`Delegate=yes` on the container's unit; systemd-nspawn does so)")
    return Finding("cgroup", Level.WARN, f"{found}; missing: {' '.join(missing)}", why, fix)


# ---------------------------------------------------------------------------------------- journald


def user_service_dropins(uid: int, unit_dirs: Sequence[str] = SYSTEM_UNIT_DIRS) -> list[str]:
    """Drop-ins of user@UID.service (the template's and the instance's), in the order systemd applies them."""
    return dropin_paths([os.path.join(directory, f"user@{instance}.service.d")
                         for directory in unit_dirs for instance in ("", str(uid))])


def _rate(burst: str, interval: str, source: str) -> float | None:
    """Lines per second a burst per interval allows; None for no limit (either 0, journald.conf(5))."""
    usec = timespan_usec(interval)
    if not burst.isdigit() or usec is None:
        raise PmsdError(f"{source}: journald reads no number of lines per time span there")
    lines = int(burst)
    return None if lines == 0 or usec == 0 else lines / (usec / 1e6)


def check_journald_rate_limit(user: bool, uid: int | None = None, conf: str = JOURNALD_CONF,
                              dropin_dirs: Sequence[str] = JOURNALD_DROPINS,
                              unit_dirs: Sequence[str] = SYSTEM_UNIT_DIRS) -> Finding:
    """The budget journald gives the apps' lines: journald's per-unit limit, which every unit of a user manager
    shares as user@UID.service (unless that unit sets its own LogRateLimit*); pmsd's system units set theirs."""
    uid = os.getuid() if uid is None else uid
    journald = read_journald(RATE_LIMIT_DEFAULTS, conf, dropin_dirs)
    burst, interval = journald.value("RateLimitBurst"), journald.value("RateLimitIntervalSec")
    source = f"RateLimitBurst={burst} per RateLimitIntervalSec={interval} ({journald.source('RateLimitBurst')})"
    interval_s = LOG_RATE_LIMIT_INTERVAL_USEC // 10**6
    wanted = f"{LOG_RATE_LIMIT_BURST} lines per {interval_s} s"
    if not user:
        return Finding("journald-rate-limit", Level.OK, f"pmsd's system units set their own limit ({wanted}); "
                       f"journald's default for other units: {source}")
    own = read_settings(user_service_dropins(uid, unit_dirs), "Service",
                        {"LogRateLimitBurst": "", "LogRateLimitIntervalSec": ""})
    if own.value("LogRateLimitBurst"):
        burst = own.value("LogRateLimitBurst")
        interval = own.value("LogRateLimitIntervalSec") or interval
        source = f"LogRateLimitBurst={burst} per {interval} ({own.source('LogRateLimitBurst')})"
    rate = _rate(burst, interval, source)
    unreadable = f"; unreadable: {', '.join(journald.unreadable + own.unreadable)}" \
        if journald.unreadable or own.unreadable else ""
    if rate is None or rate >= LOG_RATE_LIMIT_BURST / (LOG_RATE_LIMIT_INTERVAL_USEC / 1e6):
        return Finding("journald-rate-limit", Level.OK, f"your apps may log {source}{unreadable}")
    return Finding("journald-rate-limit", Level.WARN,
                   f"all your apps together may log {source}, below pmsd's {wanted}{unreadable}",
                   f"every unit of your user manager shares user@{uid}.service's budget: lines above it are "
                   "dropped, a chatty app's and the other apps' alike (journald says 'Suppressed N messages', "
                   "and `pmsd logs` shows that warning); journald scales the burst up with free disk space. An app "
                   "that logs to files (out_file, error_file) has no such limit",
                   file_fix(JOURNALD_DROPIN, ["[Journal]", f"RateLimitIntervalSec={interval_s}s",
                                              f"RateLimitBurst={LOG_RATE_LIMIT_BURST}"],
                            "`systemctl restart systemd-journald`"))


def journal_use(directory: str) -> int:
    """Bytes the journal files under `directory` (one subdirectory per machine id) take on disk."""
    total = 0
    for entry in os.scandir(directory):
        for item in os.scandir(entry.path) if entry.is_dir() else [entry]:
            if item.name.endswith((".journal", ".journal~")):
                total += item.stat().st_blocks * 512
    return total


def human_size(size: int) -> str:
    value = float(size)
    for suffix in ("B", "K", "M", "G"):
        if value < 1024:
            return f"{value:.0f}{suffix}" if suffix == "B" else f"{value:.1f}{suffix}"
        value /= 1024
    return f"{value:.1f}T"


def check_journald_storage(conf: str = JOURNALD_CONF, dropin_dirs: Sequence[str] = JOURNALD_DROPINS,
                           persistent_dir: str = PERSISTENT_JOURNAL) -> Finding:
    """Where journald keeps the apps' lines (Storage=), and how much of its allowance they use."""
    settings = read_journald(STORAGE_DEFAULTS, conf, dropin_dirs)
    storage = settings.value("Storage").lower()
    persistent_fix = file_fix(JOURNALD_STORAGE_DROPIN, ["[Journal]", "Storage=persistent"],
                              "`systemctl restart systemd-journald`")
    if storage == "none":
        return Finding("journald-storage", Level.FAIL, f"Storage=none ({settings.source('Storage')})",
                       "journald keeps no line: `pmsd logs` shows nothing for apps that log to the journal "
                       "(every app without out_file/error_file)", persistent_fix)
    if storage == "volatile" or (storage == "auto" and not os.path.isdir(persistent_dir)):
        how = "Storage=volatile" if storage == "volatile" else f"Storage=auto and no {persistent_dir}"
        return Finding("journald-storage", Level.WARN, f"{how} ({settings.source('Storage')}): the journal "
                       "lives in /run/log/journal",
                       "the apps' logs are lost at every reboot, and RAM limits how far back `pmsd logs` reaches",
                       persistent_fix)
    found = f"persistent in {persistent_dir} (Storage={storage})"
    try:
        used = journal_use(persistent_dir)
        limit_text = settings.value("SystemMaxUse")
        limit = size_bytes(limit_text) if limit_text else None
        if limit is None:
            stat = os.statvfs(persistent_dir)
            limit = min(int(stat.f_blocks * stat.f_frsize * JOURNAL_DEFAULT_SHARE), JOURNAL_DEFAULT_CAP)
            limit_text = "default: 10% of the file system, at most 4G"
        found += f", using {human_size(used)} of SystemMaxUse={human_size(limit)} ({limit_text}); at the limit " \
            "journald deletes its oldest files first"
    except OSError as error:
        found += f" (its use cannot be read: {failure_text(error)})"
    return Finding("journald-storage", Level.OK, found)


# ---------------------------------------------------------------------------------------- clock


def check_clock(max_error: Callable[[], int] = max_error_us, timesync_file: str = TIMESYNC_FILE) -> Finding:
    """Is the system clock synchronized (timedatectl's "System clock synchronized", from adjtimex(2))?"""
    why = ("cron_restart timers fire on the wall clock, and uptimes and log times are wall-clock times: when an "
           "unsynchronized clock is corrected it jumps, and a timer may fire twice or not at all")
    fix = ("as root: `timedatectl set-ntp true` (starts systemd-timesyncd), or install chrony; "
           "`timedatectl timesync-status` shows how it goes")
    try:
        error_us = max_error()
    except OSError as error:
        if os.path.exists(timesync_file):
            return Finding("clock", Level.OK, f"synchronized by systemd-timesyncd ({timesync_file} exists)")
        return Finding("clock", Level.WARN, f"unknown: {failure_text(error)}, and no {timesync_file}", why, fix)
    if synchronized(error_us):
        return Finding("clock", Level.OK, f"synchronized (maximum error {error_us / 1000:g} ms)")
    return Finding("clock", Level.WARN, "not synchronized (the kernel's maximum error is 16 s or more)", why, fix)
