#!/usr/bin/env python3
"""Core benchmark: pmsd against PM2 and against raw systemd floors, side by side, in one run.

    python3 tests/bench/bench_core.py [--quick] [--json PATH] [--pmsd LABEL=COMMAND]...

Measures (medians of N fresh repetitions, N=7, or 3 with --quick):
  start    invoking `X start` until the CLI has returned AND the app's first line has run;
  ls       `ls` / `jlist` with 1, 10, 100 and 1,000 idle apps, plus the raw floors for the same query; pmsd
           twice: answered by god (which the bench points at its own registry), and with god down
           (PMSD_NO_GOD=1: pmsd asks systemd itself); and `start` of one more app beside them (its table
           lists them all);
  crash    `kill -9` of the app's process until the restarted instance's first line has run.

Not a pytest test: it prints a table and, with --json, writes every sample. See README.md beside it.
Stdlib only, plus pystemd for the bare-Python floors (floor_ls.py, floor_start.py beside this file).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
# The interpreter's real binary, never a pyenv shim: a shim is a bash script costing ~130 ms per start,
# which would be charged to whichever tool happened to be launched through it.
PYTHON = str(Path(sys.executable).resolve())
# The apps' interpreter, the same under every manager and in every floor: the distro's own python3, as a deployed
# app's would be. A development interpreter (pyenv) may run .pth files at every start (an editable install, a CA
# bundle: ~25 ms here) that every manager would pay alike, hiding the difference between them.
APP_PYTHON = next((path for path in ("/usr/bin/python3",) if os.access(path, os.X_OK)), PYTHON)
PM2_DIR = Path("/tmp/pmsd-bench-pm2")  # npm install cache, reused across runs
CLI_TIMEOUT = 120.0  # one CLI call; generous because `pm2 start` of 100 apps is one call
MARKER_TIMEOUT = 30.0
# PM2 counts a restart as "unstable" when the app lived less than min_uptime (1 s by default); let each
# crash victim live past that so both managers see an ordinary crash of a settled app.
CRASH_SETTLE_S = 1.1
LEVELS = (1, 10, 100, 1000)
GOD_UNIT = "pmsd-god.service"


# ---------------------------------------------------------------------------------------------- plumbing


class BenchError(RuntimeError):
    """A step of the benchmark failed; the part it belongs to is skipped, the rest goes on."""


def bench_env() -> dict[str, str]:
    """Environment for every child: the user bus, and bytecode caching like a normal install has."""
    env = dict(os.environ)
    uid = os.getuid()
    env.setdefault("XDG_RUNTIME_DIR", f"/run/user/{uid}")
    env.setdefault("DBUS_SESSION_BUS_ADDRESS", f"unix:path=/run/user/{uid}/bus")
    # This machine sets PYTHONDONTWRITEBYTECODE=1, which makes every CLI run recompile its own
    # modules; a pip-installed tool has its .pyc files. Cache them outside the repo (no files appear in
    # /work/main/pmsd) so every Python process pays only what it would on a user's machine.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "pmsd-bench-pycache")
    return env


def run(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a setup or cleanup command (not timed), capturing its output for error messages."""
    proc = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc


def timed_run(argv: Sequence[str], env: dict[str, str]) -> tuple[int, int]:
    """Run a measured command; return (start, end) as time.time_ns() readings.

    time.time_ns (CLOCK_REALTIME) rather than perf_counter because end points are compared with the
    clock readings the apps write into their markers.
    """
    t0 = time.time_ns()
    proc = subprocess.run(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    t1 = time.time_ns()
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-800:]}")
    return t0, t1


def become_subreaper() -> None:
    """Adopt orphans (PM2's daemonised God process) so they are reaped here, not left as zombies.

    PID 1 of a container need not reap them: here a `pm2 kill` left a defunct daemon behind for a while.
    """
    pr_set_child_subreaper = 36
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def reap_orphans() -> None:
    """Collect any adopted, exited children (only called when no subprocess call is in flight)."""
    with suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


# ------------------------------------------------------------------------------------------------ apps


@dataclass
class Apps:
    """Copies of marker_app.py in a scratch directory, and the markers they write."""

    root: Path

    def __post_init__(self) -> None:
        (self.root / "markers").mkdir(parents=True, exist_ok=True)
        self._source = (HERE / "marker_app.py").read_text()

    def new(self, stem: str) -> Path:
        """A fresh app whose marker is markers/<stem>."""
        script = self.root / f"{stem}.py"
        script.write_text(self._source)
        return script

    def read(self, stem: str) -> tuple[int, int] | None:
        """(pid, time_ns) the app recorded, or None before it ran."""
        try:
            pid, t_ns = (self.root / "markers" / stem).read_text().split()
        except FileNotFoundError:
            return None
        return int(pid), int(t_ns)

    def wait(self, stem: str, *, not_pid: int = 0) -> tuple[int, int]:
        """Wait for a marker written by a process other than not_pid (i.e. a new instance)."""
        deadline = time.monotonic() + MARKER_TIMEOUT
        while time.monotonic() < deadline:
            marker = self.read(stem)
            if marker is not None and marker[0] != not_pid:
                return marker
            # The sleep only decides when we look; the figure comes from the app's own clock reading.
            time.sleep(0.002)
        raise BenchError(f"app {stem} wrote no marker within {MARKER_TIMEOUT:.0f} s")


# ------------------------------------------------------------------------------------------- results


@dataclass
class Result:
    group: str  # "start", "ls", "crash"
    label: str
    level: int | None  # number of running apps for the ls group
    samples_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None


@dataclass
class Results:
    items: list[Result] = field(default_factory=list)

    def get(self, group: str, label: str, level: int | None = None) -> Result | None:
        for item in self.items:
            if (item.group, item.label, item.level) == (group, label, level):
                return item
        return None

    def median(self, group: str, label: str, level: int | None = None) -> float | None:
        item = self.get(group, label, level)
        return item.median_ms if item else None

    def record(
        self,
        group: str,
        label: str,
        level: int | None,
        measure: Callable[[], list[float]],
    ) -> None:
        """Run one measurement; a failure is recorded against it instead of ending the benchmark."""
        result = Result(group, label, level)
        self.items.append(result)
        where = f"{group} {label}" + (f" ({level} apps)" if level is not None else "")
        try:
            result.samples_ms = measure()
            print(f"  {where}: median {result.median_ms:.1f} ms", flush=True)
        except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
            result.error = str(exc)
            print(f"  {where}: FAILED: {exc}", flush=True)


def samples(n: int, one: Callable[[int], float], *, warmup: int = 1) -> list[float]:
    """n timed repetitions after `warmup` discarded ones (which fill page and bytecode caches)."""
    out = [one(i) for i in range(warmup + n)]
    return out[warmup:]


# ------------------------------------------------------------------------------------------ managers


@dataclass
class Manager:
    """A process manager driven through its CLI (pmsd or PM2)."""

    label: str
    cli: list[str]
    env: dict[str, str]
    start_extra: list[str] = field(default_factory=list)  # e.g. --interpreter

    def start_argv(self, script: Path, name: str) -> list[str]:
        return [*self.cli, "start", str(script), "--name", name, *self.start_extra]

    def delete_all(self) -> None:
        run([*self.cli, "delete", "all"], self.env, check=False)

    def jlist(self) -> list[dict[str, Any]]:
        out = run([*self.cli, "jlist"], self.env).stdout
        # PM2 may print notices before the JSON document; take the last line that parses.
        for line in reversed(out.strip().splitlines()):
            with suppress(ValueError):
                apps = json.loads(line)
                if isinstance(apps, list):
                    return apps
        raise BenchError(f"{self.label} jlist printed no JSON list: {out[-300:]!r}")

    def bulk_start(self, apps: Apps, names: list[str]) -> None:
        """Start many idle apps (setup, not timed), then wait until every one runs.

        One ecosystem file instead of 100 CLI calls, since setup time is not what we measure; one CLI
        call per app if the manager rejects the file.
        """
        if not names:
            return
        eco = [{"name": n, "script": str(apps.new(n)), "interpreter": APP_PYTHON} for n in names]
        path = apps.root / f"bulk-{self.label}-{names[0]}.json"
        path.write_text(json.dumps({"apps": eco}))
        if run([*self.cli, "start", str(path)], self.env, check=False).returncode != 0:
            self.delete_named(names)
            for name in names:
                run(self.start_argv(apps.root / f"{name}.py", name), self.env)
        for name in names:
            apps.wait(name)

    def delete_named(self, names: list[str]) -> None:
        """Undo a partly applied bulk start."""
        for name in names:
            run([*self.cli, "delete", name], self.env, check=False)


class Pm2(Manager):
    def kill(self) -> None:
        run([*self.cli, "kill"], self.env, check=False)
        reap_orphans()


def setup_pm2(scratch: Path, env: dict[str, str]) -> Pm2:
    """npm-install PM2 once into PM2_DIR and give it a private PM2_HOME."""
    pm2 = PM2_DIR / "node_modules" / ".bin" / "pm2"
    if not pm2.exists():
        print(f"installing pm2 into {PM2_DIR} ...", flush=True)
        PM2_DIR.mkdir(parents=True, exist_ok=True)
        if not (PM2_DIR / "package.json").exists():
            (PM2_DIR / "package.json").write_text('{"name": "pmsd-bench-pm2", "private": true}\n')
        run(["npm", "install", "--no-audit", "--no-fund", "pm2"], env, cwd=PM2_DIR)
    home = scratch / "pm2home"
    home.mkdir()
    pm2_env = env | {"PM2_HOME": str(home)}
    # Without PM2_HOME, any pm2 call (even --version) spawns a daemon in ~/.pm2: always pass it.
    return Pm2("pm2", [str(pm2)], pm2_env, ["--interpreter", APP_PYTHON])


def pm2_version() -> str | None:
    """Read from package.json: `pm2 --version` would fork a daemon."""
    try:
        version = json.loads((PM2_DIR / "node_modules" / "pm2" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


BENCH_VENV = Path("/tmp/pmsd-bench-venv")


def bench_venv(env: dict[str, str]) -> Path | None:
    """This checkout installed as a user installs it (`pip install .` into a venv, .pyc files compiled), reused
    across runs and reinstalled each time (its dependencies stay). A development machine's interpreter may pay
    for .pth files at every start (an editable install's finder, a CA bundle: ~25 ms here) that neither a
    user's install nor PM2 pays. None if it cannot be built; the bench then uses what is on PATH."""
    python = BENCH_VENV / "bin" / "python"
    try:
        if not python.exists():
            run([PYTHON, "-m", "venv", str(BENCH_VENV)], env)
            run([str(python), "-m", "pip", "install", "-q", str(REPO_ROOT)], env)
        else:
            run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO_ROOT)], env)
    except BenchError as error:
        print(f"no bench venv ({error}); using pmsd from PATH", flush=True)
        return None
    return BENCH_VENV / "bin"


def floor_python() -> str:
    """The bare-Python floors run on pmsd's own interpreter setup (the bench venv's), so that they differ from
    pmsd only by what pmsd does."""
    python = BENCH_VENV / "bin" / "python"
    return str(python) if python.exists() else PYTHON


def find_pmsd(env: dict[str, str], state_home: Path) -> Manager | None:
    """pmsd from the bench's venv (bench_venv), else on PATH (bypassing a pyenv shim), else `python3 -m pmsd`
    from the repo; None if not working.

    pmsd keeps its registry in a private state directory: `pmsd delete all` removes the bench's apps only, never
    the user's own or those of tests running alongside.
    """
    venv = bench_venv(env)
    exe = str(venv / "pmsd") if venv is not None else shutil.which("pmsd")
    if exe and "/.pyenv/shims/" in exe:
        real = Path(PYTHON).parent / "pmsd"
        exe = str(real) if real.exists() else exe
    # PMSD_STATE_DIR, not XDG_STATE_HOME: god serves one registry per manager, and the bench points it at
    # this one (god_serving) so that `pmsd ls` is answered by god.
    pmsd_env = env | {"PMSD_STATE_DIR": str(state_home / "pmsd")}
    if exe:
        cli = [exe]
    else:
        cli = [PYTHON, "-m", "pmsd"]
        pmsd_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return usable_pmsd("pmsd", cli, pmsd_env)


def usable_pmsd(label: str, cli: list[str], pmsd_env: dict[str, str]) -> Manager | None:
    """A pmsd CLI as a Manager, None if its jlist does not work."""
    manager = Manager(label, cli, pmsd_env)
    try:
        manager.jlist()
    except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"pmsd is not usable ({' '.join(cli)}): {exc}", flush=True)
        return None
    # Run the same interpreter binary under every manager, if pmsd takes PM2's --interpreter.
    help_text = run([*cli, "start", "--help"], pmsd_env, check=False).stdout
    if "--interpreter" in help_text:
        manager.start_extra = ["--interpreter", APP_PYTHON]
    return manager


# ------------------------------------------------------------------------------ systemd-run floors


@dataclass
class RawUnits:
    """Transient units started without any manager: the floor every pmsd figure is compared with."""

    prefix: str  # unique per run, never "pmsd-": pmsd owns that namespace
    env: dict[str, str]
    started: list[str] = field(default_factory=list)

    def unit(self, name: str) -> str:
        unit = f"{self.prefix}{name}.service"
        self.started.append(unit)
        return unit

    def systemd_run(self, unit: str, script: Path, *props: str) -> list[str]:
        argv = [
            "systemd-run",
            "--user",
            "--quiet",
            "--collect",
            "--unit",
            unit,
            "-p",
            "Type=exec",
        ]
        for prop in props:
            argv += ["-p", prop]
        return [*argv, APP_PYTHON, str(script)]

    def stop(self, *units: str) -> None:
        if units:
            run(["systemctl", "--user", "stop", *units], self.env, check=False)

    def stop_all(self) -> None:
        self.stop(*self.started)
        run(
            ["systemctl", "--user", "reset-failed", f"{self.prefix}*"],
            self.env,
            check=False,
        )
        self.started.clear()

    def bulk_start(self, apps: Apps, names: list[str]) -> None:
        for name in names:
            run(self.systemd_run(self.unit(name), apps.new(name)), self.env)


class BulkStarter(Protocol):
    def bulk_start(self, apps: Apps, names: list[str]) -> None: ...


# -------------------------------------------------------------------------------------- measurements


def start_sample(apps: Apps, stem: str, argv: list[str], env: dict[str, str]) -> float:
    """ms from invoking argv until it has exited and the app it started has run its first line."""
    t0, t_cli = timed_run(argv, env)
    _, t_app = apps.wait(stem)
    return (max(t_cli, t_app) - t0) / 1e6


def measure_manager_start(mgr: Manager, apps: Apps, n: int, tag: str) -> list[float]:
    def one(i: int) -> float:
        name = f"bench-{tag}-start-{i}"
        try:
            return start_sample(apps, name, mgr.start_argv(apps.new(name), name), mgr.env)
        finally:
            mgr.delete_all()  # nothing else of ours runs during this part

    mgr.delete_all()
    return samples(n, one)


def measure_start_beside(mgr: Manager, apps: Apps, n: int, level: int) -> list[float]:
    """`start` of one more app while `level` idle apps run (the manager's registry, table and daemon hold them
    all); that app is deleted again after each sample."""

    def one(i: int) -> float:
        name = f"bench-{mgr.label}-beside{level}-{i}"
        try:
            return start_sample(apps, name, mgr.start_argv(apps.new(name), name), mgr.env)
        finally:
            run([*mgr.cli, "delete", name], mgr.env, check=False)

    return samples(n, one)


def measure_raw_start(raw: RawUnits, apps: Apps, n: int, via_pystemd: bool) -> list[float]:
    def one(i: int) -> float:
        name = f"start-{'dbus' if via_pystemd else 'run'}-{i}"
        unit = raw.unit(name)
        script = apps.new(name)
        if via_pystemd:
            argv = [floor_python(), str(HERE / "floor_start.py"), unit, APP_PYTHON, str(script)]
        else:
            argv = raw.systemd_run(unit, script)
        try:
            return start_sample(apps, name, argv, raw.env)
        finally:
            raw.stop(unit)

    return samples(n, one)


def measure_direct_start(apps: Apps, n: int, env: dict[str, str]) -> list[float]:
    """Plain fork+exec of the app: what the interpreter itself costs, with no manager at all."""

    def one(i: int) -> float:
        name = f"start-direct-{i}"
        script = apps.new(name)
        t0 = time.time_ns()
        proc = subprocess.Popen([APP_PYTHON, str(script)], env=env)
        try:
            _, t_app = apps.wait(name)
            return (t_app - t0) / 1e6
        finally:
            proc.kill()
            proc.wait()

    return samples(n, one)


def crash_sample(apps: Apps, stem: str) -> float:
    """kill -9 the app's process; ms until the restarted instance has run its first line."""
    time.sleep(CRASH_SETTLE_S)
    marker = apps.read(stem)
    if marker is None:
        raise BenchError(f"app {stem} lost its marker")
    pid = marker[0]
    t_kill = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    _, t_new = apps.wait(stem, not_pid=pid)
    return (t_new - t_kill) / 1e6


def measure_manager_crash(mgr: Manager, apps: Apps, n: int, tag: str) -> list[float]:
    # A fresh app per repetition: repeated kills of one app would run into restart rate limits
    # (systemd's StartLimitBurst, PM2's unstable-restart counter) and measure those instead.
    def one(i: int) -> float:
        name = f"bench-{tag}-crash-{i}"
        try:
            run(mgr.start_argv(apps.new(name), name), mgr.env)
            apps.wait(name)
            return crash_sample(apps, name)
        finally:
            mgr.delete_all()

    mgr.delete_all()
    return samples(n, one, warmup=0)


def measure_raw_crash(raw: RawUnits, apps: Apps, n: int) -> list[float]:
    def one(i: int) -> float:
        name = f"crash-{i}"
        unit = raw.unit(name)
        try:
            run(
                raw.systemd_run(unit, apps.new(name), "Restart=always", "RestartSec=0"),
                raw.env,
            )
            apps.wait(name)
            return crash_sample(apps, name)
        finally:
            raw.stop(unit)

    return samples(n, one, warmup=0)


def measure_cmd(argv: list[str], env: dict[str, str], n: int) -> list[float]:
    """ms from invoking argv until it exits (output discarded)."""

    def one(_: int) -> float:
        t0, t1 = timed_run(argv, env)
        return (t1 - t0) / 1e6

    return samples(n, one)


def measure_list_and_show(pattern: str, env: dict[str, str], n: int) -> list[float]:
    """The shell-script floor: `systemctl list-units PATTERN`, then `systemctl show` of every unit found."""
    list_argv = [
        "systemctl",
        "--user",
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        pattern,
    ]

    def one(_: int) -> float:
        t0 = time.perf_counter()
        listed = run(list_argv, env).stdout
        units = [line.split()[0] for line in listed.splitlines() if line.strip()]
        run(["systemctl", "--user", "show", *units], env)
        return (time.perf_counter() - t0) * 1e3

    return samples(n, one)


def wait_for_units(pattern: str, level: int, env: dict[str, str]) -> None:
    """Wait until exactly `level` units match, as floor_ls.py sees them.

    A just-deleted unit can stay loaded (inactive) for a moment, and the floors must query the very
    unit set the manager's own ls was timed on.
    """
    deadline = time.monotonic() + 10
    while True:
        found = run([floor_python(), str(HERE / "floor_ls.py"), pattern], env).stdout.splitlines()
        if len(found) == level:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{len(found)} units match {pattern!r}, expected {level}: {found[:5]}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------- phases


@dataclass
class Bench:
    n: int
    levels: tuple[int, ...]
    apps: Apps
    env: dict[str, str]
    results: Results = field(default_factory=Results)

    def start_part(self, mgr: Manager) -> None:
        self.results.record(
            "start",
            f"{mgr.label} start",
            None,
            lambda: measure_manager_start(mgr, self.apps, self.n, mgr.label),
        )

    def crash_part(self, mgr: Manager) -> None:
        self.results.record(
            "crash",
            mgr.label,
            None,
            lambda: measure_manager_crash(mgr, self.apps, self.n, mgr.label),
        )

    def grow(self, target: BulkStarter, running: int, level: int, tag: str) -> None:
        """Bring a manager (or the raw unit set) from `running` to `level` idle apps."""
        target.bulk_start(self.apps, [f"bench-{tag}-idle-{k:03d}" for k in range(running, level)])

    def ls_part(self, mgr: Manager, floor_pattern: str | None) -> None:
        """ls/jlist at each level; the raw floors too when mgr's units are the ones they should query."""
        mgr.delete_all()
        running = 0
        try:
            for level in self.levels:
                self.grow(mgr, running, level, mgr.label)
                running = level
                count = len(mgr.jlist())
                if count != level:
                    raise BenchError(f"{mgr.label} lists {count} apps, expected {level}")
                if floor_pattern:
                    wait_for_units(floor_pattern, level, self.env)
                for cmd in ("ls", "jlist"):
                    self.measure_cli(mgr, cmd, level)
                self.results.record("ls", f"{mgr.label} start", level,
                                    functools.partial(measure_start_beside, mgr, self.apps, self.n, level))
                if floor_pattern:
                    self.ls_floors(floor_pattern, level)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            print(f"  ls part of {mgr.label} stopped: {exc}", flush=True)
        finally:
            mgr.delete_all()

    def measure_cli(self, mgr: Manager, cmd: str, level: int) -> None:
        argv = [*mgr.cli, cmd]
        self.results.record(
            "ls",
            f"{mgr.label} {cmd}",
            level,
            lambda: measure_cmd(argv, mgr.env, self.n),
        )

    def ls_floors(self, pattern: str, level: int) -> None:
        wait_for_units(pattern, level, self.env)
        list_argv = ["systemctl", "--user", "list-units", "--all", pattern]
        self.results.record(
            "ls",
            "systemctl list-units",
            level,
            lambda: measure_cmd(list_argv, self.env, self.n),
        )
        self.results.record(
            "ls",
            "systemctl list-units + show",
            level,
            lambda: measure_list_and_show(pattern, self.env, self.n),
        )
        floor_argv = [floor_python(), str(HERE / "floor_ls.py"), pattern]
        self.results.record(
            "ls",
            "bare python D-Bus ls",
            level,
            lambda: measure_cmd(floor_argv, self.env, self.n),
        )
        # What pmsd did first (two GetAll per unit, user bus): shows what the lean calls save.
        getall_argv = [*floor_argv, "--getall"]
        self.results.record(
            "ls",
            "bare python D-Bus ls --getall",
            level,
            lambda: measure_cmd(getall_argv, self.env, self.n),
        )

    def raw_ls_floors(self, raw: RawUnits) -> None:
        """Floors on our own systemd-run units, used only when pmsd cannot provide the unit set."""
        running = 0
        try:
            for level in self.levels:
                self.grow(raw, running, level, "raw")
                running = level
                self.ls_floors(f"{raw.prefix}*", level)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            print(f"  raw ls floors stopped: {exc}", flush=True)
        finally:
            raw.stop_all()


def run_pm2(bench: Bench, pm2: Pm2) -> None:
    print("== PM2 ==", flush=True)
    try:
        # Measure the steady state: the first pm2 call also forks PM2's daemon, which is a one-off.
        run([*pm2.cli, "ping"], pm2.env)
        bench.start_part(pm2)
        bench.ls_part(pm2, None)
        bench.crash_part(pm2)
    finally:
        pm2.kill()


@contextmanager
def god_serving(pmsd: Manager) -> Iterator[None]:
    """god, one per manager, restarted on the bench's registry (the manager's PMSD_STATE_DIR), as a user's god
    serves theirs; afterwards stopped and the manager's environment put back (the next pmsd command starts god
    again on its usual registry). The god unit file pmsd writes for a pip install goes too, unless it was there
    before: the bench leaves no file behind."""
    state_dir = pmsd.env["PMSD_STATE_DIR"]
    god_file = Path(pmsd.env["XDG_RUNTIME_DIR"], "systemd", "user", GOD_UNIT)
    god_file_existed = god_file.exists()
    run(["systemctl", "--user", "set-environment", f"PMSD_STATE_DIR={state_dir}"], pmsd.env)
    run(["systemctl", "--user", "stop", GOD_UNIT], pmsd.env, check=False)
    try:
        run([*pmsd.cli, "ping"], pmsd.env)
        yield
    finally:
        run(["systemctl", "--user", "stop", GOD_UNIT], pmsd.env, check=False)
        run(["systemctl", "--user", "unset-environment", "PMSD_STATE_DIR"], pmsd.env, check=False)
        if not god_file_existed:
            god_file.unlink(missing_ok=True)
            run(["systemctl", "--user", "daemon-reload"], pmsd.env, check=False)


def run_pmsd_god_down(bench: Bench, pmsd: Manager) -> None:
    """start and ls/jlist with god down: pmsd does the work itself and asks systemd itself (the floors were
    measured with god up)."""
    down = Manager(f"{pmsd.label}-god-down", pmsd.cli, pmsd.env | {"PMSD_NO_GOD": "1"}, pmsd.start_extra)
    print(f"== {down.label} ==", flush=True)
    try:
        bench.start_part(down)
        bench.ls_part(down, None)
    finally:
        down.delete_all()
        stop_leftover_units(f"pmsd-bench-{down.label}-*", down.env)


def run_pmsd(bench: Bench, pmsd: Manager, floors: bool = True) -> None:
    print(f"== {pmsd.label} ({' '.join(pmsd.cli)}) ==", flush=True)
    try:
        bench.start_part(pmsd)
        # Only the bench's idle apps: other pmsd users (e.g. e2e tests) may have pmsd-* units too.
        bench.ls_part(pmsd, f"pmsd-bench-{pmsd.label}-idle-*" if floors else None)
        bench.crash_part(pmsd)
    finally:
        pmsd.delete_all()
        stop_leftover_units(f"pmsd-bench-{pmsd.label}-*", pmsd.env)


def stop_leftover_units(pattern: str, env: dict[str, str]) -> None:
    """Stop the bench's own pmsd units straight through systemd.

    `pmsd delete all` cannot be relied on to clean up: pmsd may be the thing that is broken, and its
    registry (in the scratch directory) is gone after the run. Every unit matching pattern is the bench's.
    """
    run(["systemctl", "--user", "stop", pattern], env, check=False)
    run(["systemctl", "--user", "reset-failed", pattern], env, check=False)


def run_floors(bench: Bench, raw: RawUnits, with_ls: bool) -> None:
    print("== floors ==", flush=True)
    r = bench.results
    try:
        r.record(
            "start",
            "systemd-run --user",
            None,
            lambda: measure_raw_start(raw, bench.apps, bench.n, False),
        )
        r.record(
            "start",
            "bare python StartTransientUnit",
            None,
            lambda: measure_raw_start(raw, bench.apps, bench.n, True),
        )
        r.record(
            "start",
            "python3 app.py (no manager)",
            None,
            lambda: measure_direct_start(bench.apps, bench.n, bench.env),
        )
        r.record(
            "crash",
            "systemd Restart=always RestartSec=0",
            None,
            lambda: measure_raw_crash(raw, bench.apps, bench.n),
        )
        if with_ls:
            bench.raw_ls_floors(raw)
    finally:
        raw.stop_all()


# ------------------------------------------------------------------------------------------- report


def fmt_ms(value: float | None) -> str:
    return f"{value:8.1f}" if value is not None else "       -"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_ratio(value: float | None) -> str:
    return f"{value:7.2f}x" if value is not None else "       -"


# Rows of ratios: (row label, group, numerator label, denominator label).
RATIOS: list[tuple[str, str, str, str]] = [
    ("start: pmsd / PM2", "start", "pmsd start", "pm2 start"),
    (
        "start: pmsd / bare python",
        "start",
        "pmsd start",
        "bare python StartTransientUnit",
    ),
    ("start: pmsd / systemd-run", "start", "pmsd start", "systemd-run --user"),
    ("start beside N apps: pmsd / PM2", "ls", "pmsd start", "pm2 start"),
    ("start beside N apps: pmsd-god-down / PM2", "ls", "pmsd-god-down start", "pm2 start"),
    ("ls: pmsd / PM2", "ls", "pmsd ls", "pm2 ls"),
    ("jlist: pmsd / PM2", "ls", "pmsd jlist", "pm2 jlist"),
    ("ls: pmsd-god-down / PM2", "ls", "pmsd-god-down ls", "pm2 ls"),
    ("jlist: pmsd-god-down / PM2", "ls", "pmsd-god-down jlist", "pm2 jlist"),
    ("ls: pmsd / bare python", "ls", "pmsd ls", "bare python D-Bus ls"),
    ("jlist: pmsd / bare python", "ls", "pmsd jlist", "bare python D-Bus ls"),
    ("ls: pmsd / systemctl list+show", "ls", "pmsd ls", "systemctl list-units + show"),
    ("crash: pmsd / PM2", "crash", "pmsd", "pm2"),
    (
        "crash: pmsd / systemd floor",
        "crash",
        "pmsd",
        "systemd Restart=always RestartSec=0",
    ),
]


def ratios(extra_labels: Sequence[str] = ()) -> list[tuple[str, str, str, str]]:
    """RATIOS, plus each other pmsd CLI (--pmsd) against PM2 and against the default pmsd."""
    rows = list(RATIOS)
    for label in extra_labels:
        rows += [(f"start: {label} / PM2", "start", f"{label} start", "pm2 start"),
                 (f"start: {label} / pmsd", "start", f"{label} start", "pmsd start"),
                 (f"ls: {label} / PM2", "ls", f"{label} ls", "pm2 ls"),
                 (f"ls: {label} / pmsd", "ls", f"{label} ls", "pmsd ls"),
                 (f"jlist: {label} / PM2", "ls", f"{label} jlist", "pm2 jlist")]
    return rows


def ratio_table(results: Results, levels: tuple[int, ...], extra_labels: Sequence[str] = ()) -> list[dict[str, Any]]:
    rows = []
    for row, group, num, den in ratios(extra_labels):
        for level in levels if group == "ls" else (None,):
            value = ratio(results.median(group, num, level), results.median(group, den, level))
            rows.append({"ratio": row, "level": level, "value": value})
    return rows


def print_report(results: Results, levels: tuple[int, ...], n: int, extra_labels: Sequence[str] = ()) -> None:
    print(f"\nMedians of {n} fresh repetitions, milliseconds.\n")
    print("start one app (CLI returned AND app code running)")
    for item in (i for i in results.items if i.group == "start"):
        print(f"  {item.label:38s} {fmt_ms(item.median_ms)}" + ("  FAILED" if item.error else ""))
    print("\nls / jlist" + " " * 31 + "".join(f"{f'{lv} apps':>10s}" for lv in levels))
    for label in dict.fromkeys(i.label for i in results.items if i.group == "ls"):
        print(f"  {label:38s}" + "".join(f"  {fmt_ms(results.median('ls', label, lv))}" for lv in levels))
    print("\ncrash-to-restart (kill -9 until new instance runs)")
    for item in (i for i in results.items if i.group == "crash"):
        print(f"  {item.label:38s} {fmt_ms(item.median_ms)}" + ("  FAILED" if item.error else ""))
    print("\nratios of medians" + " " * 24 + "".join(f"{f'{lv} apps':>10s}" for lv in levels))
    for row, group, num, den in ratios(extra_labels):
        cells = [ratio(results.median(group, num, lv), results.median(group, den, lv)) for lv in levels]
        if group == "ls":
            print(f"  {row:38s}" + "".join(f"  {fmt_ratio(c)}" for c in cells))
        else:
            print(f"  {row:38s} {fmt_ratio(ratio(results.median(group, num), results.median(group, den)))}")


def machine_meta(began: float, load_before: tuple[float, float, float]) -> dict[str, Any]:
    """Where and when a bench ran, and how busy the machine was; printed as the run's last line."""
    meta: dict[str, Any] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "seconds": round(time.monotonic() - began, 1),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"\ntotal {meta['seconds']} s; load average before {load_before}, after {meta['loadavg_after']}")
    return meta


def write_json(path: Path, results: Results, meta: dict[str, Any], levels: tuple[int, ...],
               extra_labels: Sequence[str] = ()) -> None:
    doc = {
        "meta": meta,
        "results": [
            {
                "group": i.group,
                "label": i.label,
                "level": i.level,
                "median_ms": i.median_ms,
                "min_ms": min(i.samples_ms) if i.samples_ms else None,
                "max_ms": max(i.samples_ms) if i.samples_ms else None,
                "samples_ms": i.samples_ms,
                "error": i.error,
            }
            for i in results.items
        ],
        "ratios": ratio_table(results, levels, extra_labels),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nJSON written to {path}")


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    parser.add_argument("--reps", type=int, help="repetitions per figure (overrides --quick)")
    parser.add_argument("--json", type=Path, help="write all samples and medians here")
    parser.add_argument(
        "--levels",
        default=",".join(map(str, LEVELS)),
        help="app counts for ls (default 1,10,100,1000)",
    )
    parser.add_argument("--skip-pm2", action="store_true")
    parser.add_argument("--skip-pmsd", action="store_true")
    parser.add_argument("--pmsd", action="append", default=[], metavar="LABEL=COMMAND",
                        help="also benchmark this pmsd CLI (the command is split on spaces), e.g. "
                        "package=/usr/bin/pmsd venv=/opt/pmsd-venv/bin/pmsd; repeatable")
    return parser.parse_args(argv)


@contextmanager
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pmsd-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n = args.reps or (3 if args.quick else 7)
    levels = tuple(int(x) for x in args.levels.split(","))
    env = bench_env()
    become_subreaper()
    began = time.monotonic()
    # Other work on the machine (2 cores here) shows up in every figure: record how busy it was.
    load_before = os.getloadavg()
    with scratch_dir() as scratch:
        bench = Bench(n, levels, Apps(scratch / "apps"), env)
        raw = RawUnits(f"pmsdbench-{os.getpid()}-", env)
        pmsd = None if args.skip_pmsd else find_pmsd(env, scratch / "state")
        pm2 = None if args.skip_pm2 else setup_pm2(scratch, env)
        if pm2:
            run_pm2(bench, pm2)
        if pmsd:
            with god_serving(pmsd):
                run_pmsd(bench, pmsd)
            run_pmsd_god_down(bench, pmsd)
        # Each other installation on a registry of its own, served by its own god (god_serving): with
        # XDG_STATE_HOME instead, god served another registry and every figure was the CLI asking systemd itself.
        extra = [m for m in (usable_pmsd(label, command.split(), env | {"PMSD_STATE_DIR": str(scratch / label)})
                             for label, _, command in (item.partition("=") for item in args.pmsd)) if m]
        for other in extra:
            with god_serving(other):
                run_pmsd(bench, other, floors=False)
        # The ls floors must query the units pmsd ls queries; without pmsd they get units of their own.
        run_floors(bench, raw, with_ls=pmsd is None)
    reap_orphans()
    labels = [m.label for m in extra]
    print_report(bench.results, levels, n, labels)
    meta = {
        "reps": n,
        "levels": list(levels),
        "python": PYTHON,
        "app_python": APP_PYTHON,
        "pm2_version": pm2_version(),
        "pmsd_cli": pmsd.cli if pmsd else None,
        "pmsd_start_extra": pmsd.start_extra if pmsd else None,
        "pmsd_others": {m.label: m.cli for m in extra},
        "ls_floor_pattern": "pmsd-bench-pmsd-idle-*" if pmsd else f"{raw.prefix}*",
        **machine_meta(began, load_before),
    }
    if args.json:
        write_json(args.json, bench.results, meta, levels, labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
