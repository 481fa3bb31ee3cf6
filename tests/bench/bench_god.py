#!/usr/bin/env python3
"""God benchmark: pmsd's resident daemon (pmsd-god.service) against PM2 7's God daemon, side by side, in one run.

    python3 tests/bench/bench_god.py [--seconds 60] [--reps 7] [--json PATH]

Measures:
  daemon   RSS (VmRSS) and CPU (utime+stime over a window) of each daemon with 10 and 100 idle apps, both
           managers holding their apps at the same time and sampled over the same window;
  per-app  RSS of one idle Python and one idle Node app run bare (`python3 app.py`), under pmsd and under
           PM2 (which runs Node apps inside its ProcessContainerFork.js wrapper);
  crash    SIGKILL of an app's main pid until its manager has exec'd the new instance, and until that
           instance has run its first line; pmsd, PM2, and systemd's own Restart=always RestartSec=0 floor.

Not a pytest test: it prints a table and, with --json, writes every sample. See README.md beside it.
Reuses the plumbing of bench_core.py (PM2 setup, pmsd lookup, marker apps, environment).

pmsd-god.service is one per user manager and reads the registry named by the manager's PMSD_STATE_DIR, which
others (the e2e tests) re-point too. By default the bench runs the same god program as a unit of its own
(pmsdbench-<pid>-god.service, same Type=notify/watchdog/restart settings) on its own registry and socket;
--shared-god measures pmsd-god.service itself instead (see the God class).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this file's directory is sys.path[0]; the repository root makes `tests.bench.bench_core`
# importable under the same name mypy knows it by (tests/ is a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_core import (
    CRASH_SETTLE_S,
    MARKER_TIMEOUT,
    PYTHON,
    Apps,
    BenchError,
    Manager,
    Pm2,
    RawUnits,
    become_subreaper,
    bench_env,
    find_pmsd,
    machine_meta,
    pm2_version,
    reap_orphans,
    run,
    scratch_dir,
    setup_pm2,
    stop_leftover_units,
)

GOD_UNIT = "pmsd-god.service"
LEVELS = (10, 100)
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY_S = 1.0  # RSS sampling period inside a window
SETTLE_S = 5.0  # after the last app of a level runs, before the window opens (start-up work must not count)
PER_APP = 5  # instances of each runtime per manager for the per-app RSS
GOD_FOLLOW_TIMEOUT = 30.0
MANAGER_ROW = "systemd --user *"

# The Node counterpart of marker_app.py: records "<pid> <time_ns>" in markers/<own stem>, then idles.
NODE_APP = """\
const fs = require('fs');
const path = require('path');
const marker = path.join(__dirname, 'markers', path.basename(__filename, '.js'));
fs.writeFileSync(marker + '.tmp', `${process.pid} ${BigInt(Date.now()) * 1000000n}`);
fs.renameSync(marker + '.tmp', marker);
setInterval(() => {}, 1 << 30);
"""


# ------------------------------------------------------------------------------------------------ /proc


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def kib(value: str) -> int:
    """'  12345 kB' -> 12345."""
    return int(value.split()[0])


def rss_mib(pid: int) -> float:
    return kib(proc_status(pid)["VmRSS"]) / 1024


def cpu_ticks(pid: int) -> int:
    """utime + stime of all the process's threads, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start_ticks(pid: int) -> int:
    """When the process started (field 22): tells a process from a later one that reuses its pid."""
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[19])


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [arg.decode(errors="replace") for arg in handle.read().split(b"\0") if arg]
    except OSError:  # gone, or a zombie
        return []


def children(pid: int) -> set[int]:
    """Direct children of pid (every thread's /proc/PID/task/TID/children: a thread may be the forker)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.update(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def parent_of(pid: int) -> int:
    return int(proc_status(pid)["PPid"])


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


# ------------------------------------------------------------------------------------------------- god


@dataclass
class God:
    """The god daemon the bench measures, reading the bench's registry.

    private (default): the same program (`python3 -m pmsd.god --user`) as a transient unit of the bench's own,
    pmsdbench-<pid>-god.service, with pmsd-god.service's Type=notify, watchdog and restart settings, its
    socket in the scratch directory, and PMSD_NO_GOD=1 for the bench's pmsd CLI calls: nothing anyone else
    runs (e.g. e2e tests, which re-point pmsd-god.service at their own registries) is touched, or touches it.

    shared (--shared-god): pmsd-god.service itself, started by `pmsd ping` after pointing the manager's
    PMSD_STATE_DIR at the bench's registry; a god already running is stopped first and, with the manager's
    previous PMSD_STATE_DIR, started again at the end.
    """

    env: dict[str, str]  # the bench's environment (user bus)
    state_dir: Path
    private: bool
    unit: str
    socket: Path
    previous_state_dir: str | None = None
    manager_env_before: list[str] = field(default_factory=list)  # the manager's PMSD_* variables
    was_active: bool = False
    took_over: bool = False
    started: bool = False

    @classmethod
    def make(cls, env: dict[str, str], scratch: Path, private: bool) -> God:
        state = scratch / "state" / "pmsd"
        if private:
            return cls(env, state, True, f"pmsdbench-{os.getpid()}-god.service", scratch / "god.sock")
        return cls(env, state, False, GOD_UNIT, Path(env["XDG_RUNTIME_DIR"]) / "pmsd" / "god.sock")

    def configure(self, pmsd: Manager) -> None:
        """The bench's pmsd CLI calls use the bench's registry, and in private mode never start pmsd-god."""
        pmsd.env["PMSD_STATE_DIR"] = str(self.state_dir)
        if self.private:
            pmsd.env["PMSD_NO_GOD"] = "1"
            pmsd.env["PMSD_GOD_SOCKET"] = str(self.socket)

    def systemctl(self, *args: str, check: bool = True) -> str:
        return run(["systemctl", "--user", *args], self.env, check=check).stdout.strip()

    def main_pid(self) -> int:
        return int(self.systemctl("show", "-p", "MainPID", "--value", self.unit) or 0)

    def running_state_dir(self) -> str | None:
        """PMSD_STATE_DIR of the running god (its own environment), None if no god runs."""
        pid = self.main_pid()
        if not pid:
            return None
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return None
        for entry in environ:
            if entry.startswith(b"PMSD_STATE_DIR="):
                return entry.split(b"=", 1)[1].decode()
        return ""

    def owned(self) -> bool:
        """Whether the running god is the bench's (someone may have restarted it for their own registry)."""
        return self.running_state_dir() == str(self.state_dir)

    def ping(self) -> dict[str, Any]:
        """god's answer to its API's ping: pid, apps (how many it follows), state_dir, ..."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(self.socket))
            sock.sendall(b'{"id": 1, "method": "ping"}\n')
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data)
        if not isinstance(reply, dict) or not isinstance(reply.get("result"), dict):
            raise BenchError(f"god answered ping with {data[-300:]!r}")
        result: dict[str, Any] = reply["result"]
        return result

    def check_free(self, force: bool) -> None:
        """Shared mode: refuse to stop a god whose registry has apps (someone is using it), unless forced."""
        for line in self.systemctl("show-environment").splitlines():
            if line.startswith("PMSD_"):
                self.manager_env_before.append(line)
            if line.startswith("PMSD_STATE_DIR="):
                self.previous_state_dir = line.split("=", 1)[1]
        if self.private:
            return
        self.was_active = self.systemctl("is-active", GOD_UNIT, check=False) in ("active", "activating")
        if self.was_active and not force:
            state = self.running_state_dir()
            try:
                used = bool(state and json.loads((Path(state) / "registry.json").read_text()).get("apps"))
            except (OSError, ValueError):
                used = False
            if used:
                raise SystemExit(
                    f"{GOD_UNIT} is running for {state}, which has apps: someone is using it. "
                    "Run the bench when it is free, pass --take-over-god, or leave out --shared-god."
                )

    def start(self, pmsd: Manager) -> int:
        """Start god for the bench's registry; its pid."""
        self.started = True
        if self.private:
            # pmsd-god.service's [Service] settings (pmsd/god/unitfile.py) except RuntimeDirectory=, which
            # would be pmsd-god.service's own directory; the memory interval pinned to its default.
            props = ["Type=notify", "NotifyAccess=main", "Restart=always", "RestartSec=100ms", "WatchdogSec=10s"]
            argv = ["systemd-run", "--user", "--quiet", "--collect", "--unit", self.unit]
            for prop in props:
                argv += ["-p", prop]
            for var in (f"PMSD_STATE_DIR={self.state_dir}", f"PMSD_GOD_SOCKET={self.socket}"):
                argv += ["-E", var]
            argv += ["-E", "PMSD_MEMORY_INTERVAL_MS=1000", PYTHON, "-m", "pmsd.god", "--user"]
            run(argv, self.env)  # returns once god sent READY=1
        else:
            others = [v for v in self.manager_env_before if not v.startswith("PMSD_STATE_DIR=")]
            if others:
                print(f"note: the user manager's environment has {' '.join(others)}: god runs with it", flush=True)
            self.took_over = True
            if self.was_active:
                print(
                    f"note: {GOD_UNIT} is running (pid {self.main_pid()}, PMSD_STATE_DIR="
                    f"{self.previous_state_dir or '-'}); stopping it for the bench, it is started again at the end",
                    flush=True,
                )
                self.systemctl("stop", GOD_UNIT)
            self.systemctl("set-environment", f"PMSD_STATE_DIR={self.state_dir}")
            run([*pmsd.cli, "ping"], pmsd.env)
        return self.check()

    def check(self) -> int:
        """god's pid, after checking it is the bench's god and systemd's MainPID of its unit."""
        reply = self.ping()
        if reply.get("state_dir") != str(self.state_dir):
            raise BenchError(f"god reads {reply.get('state_dir')}, not the bench's registry: someone else's god")
        pid = int(reply["pid"])
        if pid != self.main_pid():
            raise BenchError(f"god answers as pid {pid} but {self.unit}'s MainPID is {self.main_pid()}")
        return pid

    def stop(self, pmsd: Manager) -> None:
        """Delete the bench's apps and stop its god; shared mode gives the manager back its god and environment."""
        if not self.started:
            return
        if self.private:
            pmsd.delete_all()
            self.systemctl("stop", self.unit, check=False)
            return
        # `pmsd kill` stops whichever god runs: only when it is still the bench's.
        if self.owned():
            run([*pmsd.cli, "kill"], pmsd.env, check=False)
        else:
            pmsd.delete_all()
            print(f"note: {GOD_UNIT} is not the bench's any more (someone restarted it): left running", flush=True)
        if not self.took_over:
            return
        # Only if the manager still has the bench's value: someone may have set their own meanwhile.
        if f"PMSD_STATE_DIR={self.state_dir}" in self.systemctl("show-environment", check=False).splitlines():
            if self.previous_state_dir is None:
                self.systemctl("unset-environment", "PMSD_STATE_DIR", check=False)
            else:
                self.systemctl("set-environment", f"PMSD_STATE_DIR={self.previous_state_dir}", check=False)
        if self.was_active and self.systemctl("is-active", GOD_UNIT, check=False) != "active":
            self.systemctl("start", GOD_UNIT, check=False)
            print(f"note: {GOD_UNIT} started again (pid {self.main_pid()})", flush=True)
        self.took_over = False

    def wait_follows(self, count: int) -> int:
        """Wait until god follows exactly `count` apps of the bench's registry; its pid."""
        deadline = time.monotonic() + GOD_FOLLOW_TIMEOUT
        while True:
            pid = self.check()
            apps = int(self.ping()["apps"])
            if apps == count:
                return pid
            if time.monotonic() > deadline:
                raise BenchError(f"god follows {apps} apps, expected {count}")
            time.sleep(0.2)


def foreign_pmsd_units(env: dict[str, str], prefix: str) -> list[str]:
    """Loaded pmsd-* units that are not the bench's: god gets (and must sort out) their signals too."""
    out = run(["systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", "pmsd-*"], env).stdout
    units = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [u for u in units if not u.startswith(f"pmsd-{prefix}-") and u != GOD_UNIT]


def pm2_god_pid(pm2: Pm2) -> int:
    pid = int((Path(pm2.env["PM2_HOME"]) / "pm2.pid").read_text().strip())
    if "PM2" not in " ".join(cmdline(pid)) and "God" not in comm(pid):
        raise BenchError(f"pid {pid} from pm2.pid is not PM2's daemon: {cmdline(pid)}")
    return pid


# ---------------------------------------------------------------------------------------------- daemons


@dataclass
class Footprint:
    daemon: str
    level: int
    pid: int
    rss_mib: list[float] = field(default_factory=list)  # one sample per SAMPLE_EVERY_S
    cpu_ticks: int = 0
    window_s: float = 0.0
    foreign_units: list[str] = field(default_factory=list)  # other pmsd-* units loaded around the window
    error: str | None = None

    @property
    def rss_median(self) -> float | None:
        return statistics.median(self.rss_mib) if self.rss_mib and not self.error else None

    @property
    def cpu_pct(self) -> float | None:
        """% of one core over the window."""
        if self.error or not self.window_s:
            return None
        return self.cpu_ticks / CLK_TCK / self.window_s * 100


def measure_window(daemons: dict[str, int], level: int, seconds: float) -> list[Footprint]:
    """Sample every daemon's RSS each second and its CPU time over one common window."""
    prints = [Footprint(label, level, pid) for label, pid in daemons.items()]
    born = {f.pid: start_ticks(f.pid) for f in prints}
    ticks0 = {f.pid: cpu_ticks(f.pid) for f in prints}
    t0 = time.monotonic()
    next_sample = t0
    while True:
        for f in prints:
            f.rss_mib.append(rss_mib(f.pid))
        next_sample += SAMPLE_EVERY_S
        if next_sample - t0 > seconds + 1e-6:
            break
        time.sleep(max(0.0, next_sample - time.monotonic()))
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    elapsed = time.monotonic() - t0
    for f in prints:
        try:
            same = start_ticks(f.pid) == born[f.pid]
        except OSError:
            same = False
        if not same:
            f.error = f"pid {f.pid} exited during the window"
            continue
        f.cpu_ticks = cpu_ticks(f.pid) - ticks0[f.pid]
        f.window_s = elapsed
    return prints


# ------------------------------------------------------------------------------------------------- apps


def node_app(apps: Apps, stem: str) -> Path:
    script = apps.root / f"{stem}.js"
    script.write_text(NODE_APP)
    return script


def eco_start(mgr: Manager, apps: Apps, entries: list[dict[str, str]], tag: str) -> None:
    """Start apps from one ecosystem file (setup, not timed) and wait until each has run its first line."""
    path = apps.root / f"eco-{mgr.label}-{tag}.json"
    path.write_text(json.dumps({"apps": entries}))
    run([*mgr.cli, "start", str(path)], mgr.env)
    for entry in entries:
        apps.wait(Path(entry["script"]).stem)


@dataclass
class AppRss:
    runtime: str  # "python" or "node"
    how: str  # "bare", "pmsd", "pm2"
    rss_mib: list[float] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)  # of the first instance: shows any wrapper
    parent: str = ""  # comm of the first instance's parent
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.rss_mib) if self.rss_mib else None


def per_app_rss(apps: Apps, prefix: str, pmsd: Manager, pm2: Pm2, env: dict[str, str], k: int) -> list[AppRss]:
    """K idle apps per runtime and manager, all running at once, then one VmRSS reading of each."""
    node = shutil.which("node", path=env.get("PATH")) or "node"
    runtimes: dict[str, tuple[Callable[[str], Path], list[str]]] = {
        "python": (apps.new, [PYTHON]),
        "node": (lambda stem: node_app(apps, stem), [node]),
    }
    stems: dict[tuple[str, str], list[str]] = {}
    bare: list[subprocess.Popen[bytes]] = []
    out: list[AppRss] = []
    try:
        for runtime, (make, argv0) in runtimes.items():
            for how in ("bare", "pmsd", "pm2"):
                stems[runtime, how] = [f"{prefix}-{how}-{runtime}-{i}" for i in range(k)]
            for stem in stems[runtime, "bare"]:
                bare.append(subprocess.Popen([*argv0, str(make(stem))], env=env, stdin=subprocess.DEVNULL))
            for mgr in (pmsd, pm2):
                entries = []
                for stem in stems[runtime, mgr.label]:
                    entry = {"name": stem, "script": str(make(stem))}
                    if runtime == "python":
                        entry["interpreter"] = PYTHON
                    entries.append(entry)
                eco_start(mgr, apps, entries, f"per-app-{runtime}")
        for stem_list in stems.values():
            for stem in stem_list:
                apps.wait(stem)
        time.sleep(SETTLE_S)  # Node's heap settles after start-up
        for (runtime, how), stem_list in stems.items():
            result = AppRss(runtime, how)
            out.append(result)
            try:
                for stem in stem_list:
                    marker = apps.read(stem)
                    if marker is None:
                        raise BenchError(f"{stem} lost its marker")
                    result.rss_mib.append(rss_mib(marker[0]))
                    if not result.argv:
                        result.argv = cmdline(marker[0])
                        result.parent = comm(parent_of(marker[0]))
            except (BenchError, OSError) as exc:
                result.error = str(exc)
    finally:
        for proc in bare:  # our own children, by their pids
            proc.kill()
            proc.wait()
        for mgr in (pmsd, pm2):
            mgr.delete_named([s for (_, how), lst in stems.items() if how == mgr.label for s in lst])
    return out


# ------------------------------------------------------------------------------------------------ crash


@dataclass
class Crash:
    label: str
    exec_ms: list[float] = field(default_factory=list)  # SIGKILL -> new instance exec'd (seen in /proc)
    first_line_ms: list[float] = field(default_factory=list)  # SIGKILL -> new instance's own first clock reading
    error: str | None = None

    def median(self, which: str) -> float | None:
        values: list[float] = getattr(self, which)
        return statistics.median(values) if values and not self.error else None


def crash_sample(apps: Apps, stem: str, script: Path, reported_pid: Callable[[], int]) -> tuple[float, float]:
    """SIGKILL the app's main pid; ms until its parent has exec'd the script again, and until that runs.

    The same probe for every manager: the new instance is a new child of the killed one's parent (systemd
    --user for pmsd and the floor, PM2's God for PM2) whose command line already names the script, i.e.
    after execve. Both are single /proc file reads, so the poll costs the restarting manager little CPU.
    """
    time.sleep(CRASH_SETTLE_S)
    marker = apps.read(stem)
    if marker is None:
        raise BenchError(f"app {stem} lost its marker")
    pid = marker[0]
    reported = reported_pid()
    if reported != pid:
        raise BenchError(f"the manager reports pid {reported} for {stem}, the app is {pid}")
    parent = parent_of(pid)
    before = children(parent) - {pid}
    target = str(script)
    t_kill = time.time_ns()
    os.kill(pid, signal.SIGKILL)  # the app's own main pid, checked above: a process the bench started
    deadline = time.monotonic() + MARKER_TIMEOUT
    while True:
        fresh = [c for c in children(parent) - before - {pid} if target in cmdline(c)]
        if fresh:
            t_exec = time.time_ns()
            break
        if time.monotonic() > deadline:
            raise BenchError(f"no new instance of {stem} under pid {parent} within {MARKER_TIMEOUT:.0f} s")
        time.sleep(0.0003)
    new_pid, t_first = apps.wait(stem, not_pid=pid)
    if new_pid not in fresh:
        raise BenchError(f"{stem}: new instance wrote pid {new_pid}, /proc showed {fresh}")
    return (t_exec - t_kill) / 1e6, (t_first - t_kill) / 1e6


def measure_crash(
    label: str,
    n: int,
    one: Callable[[int], tuple[float, float]],
) -> Crash:
    """n repetitions after one discarded warm-up; a fresh app each (repeated kills hit restart limits)."""
    result = Crash(label)
    try:
        for i in range(n + 1):
            exec_ms, first_ms = one(i)
            if i:
                result.exec_ms.append(exec_ms)
                result.first_line_ms.append(first_ms)
        print(
            f"  crash {label}: median exec'd {result.median('exec_ms'):.1f} ms, "
            f"first line {result.median('first_line_ms'):.1f} ms",
            flush=True,
        )
    except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
        result.error = str(exc)
        print(f"  crash {label}: FAILED: {exc}", flush=True)
    return result


def manager_crash(mgr: Manager, apps: Apps, prefix: str, n: int) -> Crash:
    def one(i: int) -> tuple[float, float]:
        name = f"{prefix}-{mgr.label}-crash-{i}"
        script = apps.new(name)
        try:
            run(mgr.start_argv(script, name), mgr.env)
            apps.wait(name)

            def reported() -> int:
                return int(run([*mgr.cli, "pid", name], mgr.env).stdout.split()[-1])

            return crash_sample(apps, name, script, reported)
        finally:
            mgr.delete_named([name])

    return measure_crash(mgr.label, n, one)


def floor_crash(raw: RawUnits, apps: Apps, n: int) -> Crash:
    def one(i: int) -> tuple[float, float]:
        name = f"crash-{i}"
        unit = raw.unit(name)
        script = apps.new(f"{raw.prefix}{name}")
        try:
            run(raw.systemd_run(unit, script, "Restart=always", "RestartSec=0"), raw.env)
            apps.wait(script.stem)

            def reported() -> int:
                return int(run(["systemctl", "--user", "show", "-p", "MainPID", "--value", unit], raw.env).stdout)

            return crash_sample(apps, script.stem, script, reported)
        finally:
            raw.stop(unit)

    return measure_crash("systemd Restart=always RestartSec=0", n, one)


# ----------------------------------------------------------------------------------------------- report


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def cell(value: float | None, fmt: str, width: int, sign: str = "") -> str:
    return f"{value:{sign}{width}{fmt}}" if value is not None else f"{'-':>{width}s}"


def rx(value: float | None, width: int = 9) -> str:
    return f"{value:{width - 1}.2f}x" if value is not None else f"{'-':>{width}s}"


@dataclass
class Report:
    footprints: list[Footprint] = field(default_factory=list)
    per_app: list[AppRss] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def footprint(self, daemon: str, level: int) -> Footprint | None:
        return next((f for f in self.footprints if (f.daemon, f.level) == (daemon, level)), None)

    def rss(self, daemon: str, level: int) -> float | None:
        f = self.footprint(daemon, level)
        return f.rss_median if f else None

    def cpu(self, daemon: str, level: int) -> float | None:
        f = self.footprint(daemon, level)
        return f.cpu_pct if f else None

    def app(self, runtime: str, how: str) -> AppRss | None:
        return next((a for a in self.per_app if (a.runtime, a.how) == (runtime, how)), None)

    def crash(self, label: str) -> Crash | None:
        return next((c for c in self.crashes if c.label == label), None)

    def ratios(self, levels: Sequence[int]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for level in levels:
            out[f"daemon RSS pmsd/PM2 {level} apps"] = ratio(self.rss("pmsd god", level), self.rss("PM2 God", level))
            out[f"daemon CPU pmsd/PM2 {level} apps"] = ratio(self.cpu("pmsd god", level), self.cpu("PM2 God", level))
        pmsd, pm2c = self.crash("pmsd"), self.crash("pm2")
        floor = self.crash("systemd Restart=always RestartSec=0")
        for which in ("exec_ms", "first_line_ms"):
            num = pmsd.median(which) if pmsd else None
            out[f"crash {which} pmsd/PM2"] = ratio(num, pm2c.median(which) if pm2c else None)
            out[f"crash {which} pmsd/floor"] = ratio(num, floor.median(which) if floor else None)
        return out

    def print(self, levels: Sequence[int], seconds: float, n: int, k: int) -> None:
        print(
            f"\nDaemon footprint with idle apps: RSS = median VmRSS of 1 s samples, CPU = (utime+stime) / "
            f"{seconds:g} s window, % of one core"
        )
        print(f"  {'':24s}" + "".join(f"{f'{lv} apps':>22s}" for lv in levels))
        print(f"  {'':24s}" + "".join(f"{'RSS MiB':>12s}{'CPU %':>10s}" for _ in levels))
        for daemon in ("pmsd god", "PM2 God", MANAGER_ROW):
            row = ""
            for lv in levels:
                row += cell(self.rss(daemon, lv), ".1f", 12) + cell(self.cpu(daemon, lv), ".3f", 10)
            print(f"  {daemon:24s}{row}")
        row = ""
        for lv in levels:
            row += rx(ratio(self.rss("pmsd god", lv), self.rss("PM2 God", lv)), 12)
            row += rx(ratio(self.cpu("pmsd god", lv), self.cpu("PM2 God", lv)), 10)
        print(f"  {'ratio pmsd/PM2':24s}{row}")
        print(f"  ({MANAGER_ROW}: the user manager every pmsd app runs under, holding everyone's units; context only)")

        print(f"\nPer-app RSS, MiB (median of {k} idle instances; in brackets: minus the bare app)")
        print(f"  {'':24s}{'bare':>10s}{'pmsd':>20s}{'PM2':>20s}")
        for runtime, label in (("python", "python3 app.py"), ("node", "node app.js")):
            base = self.app(runtime, "bare")
            bare_mib = base.median if base else None
            row = cell(bare_mib, ".1f", 10)
            for how in ("pmsd", "pm2"):
                a = self.app(runtime, how)
                mib = a.median if a else None
                # rounded as printed, and + 0.0 turns a -0.0 into 0.0
                diff = round(mib - bare_mib, 1) + 0.0 if mib is not None and bare_mib is not None else None
                row += cell(mib, ".1f", 10) + f" ({cell(diff, '.1f', 6, '+')})".ljust(10)
            print(f"  {label:24s}{row}")
        for a in self.per_app:
            if a.how != "bare" and a.argv:
                print(f"    {a.how} {a.runtime}: pid's parent {a.parent}, argv {' '.join(a.argv)[:90]}")

        print(f"\nCrash to running (SIGKILL of the main pid), median of {n}, ms")
        print(f"  {'':38s}{'new pid exec`d':>16s}{'first line':>12s}")
        for c in self.crashes:
            print(
                f"  {c.label:38s}{cell(c.median('exec_ms'), '.1f', 16)}{cell(c.median('first_line_ms'), '.1f', 12)}"
                + ("  FAILED" if c.error else "")
            )
        ratios = self.ratios(levels)
        print(
            f"  {'pmsd / PM2':38s}{rx(ratios['crash exec_ms pmsd/PM2'], 16)}"
            f"{rx(ratios['crash first_line_ms pmsd/PM2'], 12)}"
        )
        print(
            f"  {'pmsd / systemd floor':38s}{rx(ratios['crash exec_ms pmsd/floor'], 16)}"
            f"{rx(ratios['crash first_line_ms pmsd/floor'], 12)}"
        )

        print("\nTargets")
        for lv in levels:
            r = ratios[f"daemon RSS pmsd/PM2 {lv} apps"]
            verdict = "-" if r is None else ("met" if r <= 0.4 else "NOT met")
            print(f"  god RSS <= 0.4x PM2 ({lv} apps): {verdict}" + (f" ({r:.2f}x)" if r is not None else ""))
            god = self.footprint("pmsd god", lv)
            if god and god.cpu_pct is not None:
                print(f"  god CPU ~0 ({lv} apps): {god.cpu_pct:.3f} % ({god.cpu_ticks} ticks in {god.window_s:.0f} s)")
        for runtime in ("python", "node"):
            base, under = self.app(runtime, "bare"), self.app(runtime, "pmsd")
            if base and under and base.median is not None and under.median is not None:
                print(f"  pmsd adds nothing per app ({runtime}): {round(under.median - base.median, 1) + 0.0:+.1f} MiB")
        r = ratios["crash exec_ms pmsd/PM2"]
        if r is not None:
            print(
                f"  crash pmsd <= PM2: {'met' if r <= 1 else 'NOT met'} ({r:.2f}x exec'd, "
                f"{ratios['crash first_line_ms pmsd/PM2'] or 0:.2f}x first line)"
            )
        for note in self.notes:
            print(f"  note: {note}")
        for error in self.errors:
            print(f"  error: {error}")

    def to_json(self, levels: Sequence[int]) -> dict[str, Any]:
        return {
            "footprints": [asdict(f) | {"rss_median_mib": f.rss_median, "cpu_pct": f.cpu_pct} for f in self.footprints],
            "per_app": [asdict(a) | {"median_mib": a.median} for a in self.per_app],
            "crash": [
                asdict(c) | {"exec_median_ms": c.median("exec_ms"), "first_line_median_ms": c.median("first_line_ms")}
                for c in self.crashes
            ],
            "ratios": self.ratios(levels),
            "errors": self.errors,
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU/RSS window per level (default 60)")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="idle app counts (default 10,100)")
    parser.add_argument("--reps", type=int, default=7, help="crash repetitions (default 7)")
    parser.add_argument("--per-app", type=int, default=PER_APP, help=f"instances for per-app RSS (default {PER_APP})")
    parser.add_argument("--json", type=Path, help="write all samples and medians here")
    parser.add_argument(
        "--shared-god",
        action="store_true",
        help=f"measure {GOD_UNIT} itself, re-pointed at the bench's registry (default: a private god unit)",
    )
    parser.add_argument(
        "--take-over-god", action="store_true", help=f"with --shared-god: stop {GOD_UNIT} even if its registry has apps"
    )
    return parser.parse_args(argv)


def footprint_part(
    report: Report, pmsd: Manager, pm2: Pm2, god: God, apps: Apps, prefix: str, levels: Sequence[int], seconds: float
) -> None:
    running = 0
    for level in levels:
        print(f"  {level} idle apps per manager ...", flush=True)
        for mgr in (pmsd, pm2):
            names = [f"{prefix}-{mgr.label}-idle-{k:03d}" for k in range(running, level)]
            mgr.bulk_start(apps, names)
            count = sum(1 for app in mgr.jlist() if str(app.get("name", "")).startswith(f"{prefix}-{mgr.label}-idle-"))
            if count != level:
                raise BenchError(f"{mgr.label} lists {count} idle apps, expected {level}")
        running = level
        god_pid = god.wait_follows(level)
        time.sleep(SETTLE_S)
        foreign = foreign_pmsd_units(pmsd.env, prefix)
        daemons = {"pmsd god": god_pid, "PM2 God": pm2_god_pid(pm2), MANAGER_ROW: parent_of(god_pid)}
        prints = measure_window(daemons, level, seconds)
        foreign = sorted(set(foreign) | set(foreign_pmsd_units(pmsd.env, prefix)))
        try:
            same = god.check() == god_pid
        except (BenchError, OSError) as exc:
            same = False
            print(f"    {exc}", flush=True)
        for f in prints:
            if f.daemon == "pmsd god":
                f.foreign_units = foreign
                if not same:
                    f.error = f"{god.unit} was restarted or taken over during the window"
        report.footprints += prints
        for f in prints:
            print(
                f"    {f.daemon} (pid {f.pid}): RSS {f.rss_median or 0:.1f} MiB, CPU {f.cpu_pct or 0:.3f} %"
                + (f"  FAILED: {f.error}" if f.error else ""),
                flush=True,
            )
        if foreign:
            print(f"    note: other pmsd units were loaded (god sees their signals too): {' '.join(foreign)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    levels = tuple(int(x) for x in args.levels.split(","))
    env = bench_env()
    become_subreaper()
    began = time.monotonic()
    load_before = os.getloadavg()
    prefix = f"gb{os.getpid()}"
    report = Report()
    with scratch_dir() as scratch:
        apps = Apps(scratch / "apps")
        raw = RawUnits(f"pmsdbench-{os.getpid()}-", env)
        state = scratch / "state"
        pmsd = find_pmsd(env, state)
        if pmsd is None:
            raise SystemExit("pmsd is not usable; see above")
        god = God.make(env, scratch, private=not args.shared_god)
        god.configure(pmsd)
        god.check_free(args.take_over_god)
        pm2 = setup_pm2(scratch, env)
        try:
            print("== daemons up ==", flush=True)
            run([*pm2.cli, "ping"], pm2.env)
            god_pid = god.start(pmsd)
            print(f"  pmsd god ({god.unit}) pid {god_pid}, PM2 God pid {pm2_god_pid(pm2)}", flush=True)
            print("== per-app RSS ==", flush=True)
            report.per_app = per_app_rss(apps, prefix, pmsd, pm2, env, args.per_app)
            for a in report.per_app:
                print(f"  {a.runtime} {a.how}: {a.median or 0:.1f} MiB" + (f"  FAILED: {a.error}" if a.error else ""))
            print("== daemon footprint ==", flush=True)
            try:
                footprint_part(report, pmsd, pm2, god, apps, prefix, levels, args.seconds)
            except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
                report.errors.append(f"daemon footprint: {exc}")
                print(f"  FAILED: {exc}", flush=True)
            pmsd.delete_all()
            pm2.delete_all()
            time.sleep(2)
            stale = int(god.ping()["apps"])
            if stale:
                report.notes.append(f"god still follows {stale} apps 2 s after `pmsd delete all` (expected 0)")
                print(f"  note: {report.notes[-1]}", flush=True)
            print("== crash ==", flush=True)
            # god follows the crash apps too (the restarts themselves are systemd's)
            crash_god = god.check()
            report.crashes.append(manager_crash(pmsd, apps, prefix, args.reps))
            report.crashes.append(manager_crash(pm2, apps, prefix, args.reps))
            report.crashes.append(floor_crash(raw, apps, args.reps))
            if god.check() != crash_god:
                report.errors.append(f"{god.unit} was restarted during the crash part")
        except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
            report.errors.append(str(exc))
            print(f"FAILED: {exc}", flush=True)
        finally:
            god.stop(pmsd)
            stop_leftover_units(f"pmsd-{prefix}-*", env)
            pm2.kill()
            raw.stop_all()
    reap_orphans()
    report.print(levels, args.seconds, args.reps, args.per_app)
    meta = {
        "window_s": args.seconds,
        "levels": list(levels),
        "reps": args.reps,
        "per_app": args.per_app,
        "python": PYTHON,
        "pm2_version": pm2_version(),
        "pmsd_cli": pmsd.cli,
        "clk_tck": CLK_TCK,
        "god_unit": god.unit,
        "god_mode": "private" if god.private else "shared",
        "manager_pmsd_env_before": god.manager_env_before,
        **machine_meta(began, load_before),
    }
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, **report.to_json(levels)}, indent=2) + "\n")
        print(f"\nJSON written to {args.json}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
