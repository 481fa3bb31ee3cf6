#!/usr/bin/env python3
"""Scale benchmark (issue 17): 1,000 apps from one ecosystem file, PM2 and pmsd the same way, in one run.

    python3 tests/bench/bench_scale.py [--apps 1000] [--json PATH]

Each app is `/bin/sleep infinity` (interpreter none), so the figures are the managers' own, not 1,000 copies of
an interpreter starting. For each manager, timed with the wall clock:
  start      `start eco.json` until the CLI returned, and until `jlist` shows every app online;
  ls, jlist  three calls each, the median;
  restart    `restart all` until the CLI returned, and until every app is online again with a new pid;
  delete     `delete all` until the CLI returned;
and the daemon's (PM2's God, pmsd's god) RSS and CPU while the 1,000 apps idle for 10 s, plus the CPU time the
user manager (systemd --user) and journald spent during start and restart. The floor (floor_many.py): a bare
Python process starting as many transient units on the manager's private socket, then stopping them. pmsd's
god is pointed at the bench's own registry (bench_core.god_serving). Not a pytest test; stdlib only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this file's directory is sys.path[0]; the repository root makes `tests.bench.bench_core`
# importable under the same name mypy knows it by (tests/ is a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_core import (
    GOD_UNIT,
    BenchError,
    Manager,
    Pm2,
    become_subreaper,
    bench_env,
    find_pmsd,
    floor_python,
    god_serving,
    reap_orphans,
    run,
    scratch_dir,
    setup_pm2,
)
from tests.bench.bench_god import cpu_ticks, pm2_god_pid

IDLE_S = 10.0
ONLINE_TIMEOUT_S = 600.0


@dataclass
class Figures:
    label: str
    values: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def ecosystem(path: Path, count: int) -> Path:
    apps = [{"name": f"scale-{n:04d}", "script": "/bin/sleep", "args": "infinity", "interpreter": "none",
             "autorestart": True} for n in range(count)]
    path.write_text(json.dumps({"apps": apps}))
    return path


def statuses(mgr: Manager) -> dict[str, tuple[str, int]]:
    return {app["name"]: (app["pm2_env"]["status"], int(app.get("pid") or 0)) for app in mgr.jlist()}


def wait_online(mgr: Manager, count: int, old_pids: dict[str, int] | None = None) -> None:
    """Until `count` apps are online (each with a pid other than its old one, when given)."""
    deadline = time.monotonic() + ONLINE_TIMEOUT_S
    while True:
        seen = statuses(mgr)
        ready = [name for name, (status, pid) in seen.items()
                 if status == "online" and pid and (old_pids is None or pid != old_pids.get(name))]
        if len(ready) >= count:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{mgr.label}: {len(ready)} of {count} apps online after {ONLINE_TIMEOUT_S:g} s")
        time.sleep(0.5)


def cpu_seconds(pid: int) -> float:
    try:
        return float(cpu_ticks(pid) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def systemd_pids() -> dict[str, int]:
    """The user manager and journald of this user (read only: nothing here signals them)."""
    pids: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
            words = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        program = os.path.basename(words[0].decode(errors="replace"))
        if program == "systemd" and b"--user" in words:
            pids["user manager"] = int(entry)
        elif program == "systemd-journald":
            pids["journald"] = int(entry)
    return pids


def timed(what: Callable[[], Any]) -> float:
    started = time.perf_counter()
    what()
    return time.perf_counter() - started


def measure(mgr: Manager, eco: Path, count: int, daemon_pid: Callable[[], int]) -> Figures:
    figures = Figures(mgr.label)
    values = figures.values
    helpers = systemd_pids()
    before = {name: cpu_seconds(pid) for name, pid in helpers.items()}
    began = time.perf_counter()
    values["start: CLI returned (s)"] = timed(lambda: run([*mgr.cli, "start", str(eco)], mgr.env))
    wait_online(mgr, count)
    values["start: all online (s)"] = time.perf_counter() - began
    for name, pid in helpers.items():
        values[f"{name} CPU during start (s)"] = cpu_seconds(pid) - before[name]
    for command in ("ls", "jlist"):
        values[f"{command} (ms)"] = 1000 * statistics.median(
            timed(lambda c=command: run([*mgr.cli, c], mgr.env)) for _ in range(3))  # type: ignore[misc]
    pid = daemon_pid()
    cpu_before = cpu_seconds(pid)
    time.sleep(IDLE_S)
    values["daemon idle CPU (%)"] = 100 * (cpu_seconds(pid) - cpu_before) / IDLE_S
    values["daemon RSS (MiB)"] = rss_mib(pid)
    old = {name: pid for name, (_, pid) in statuses(mgr).items()}
    before = {name: cpu_seconds(pid) for name, pid in helpers.items()}
    began = time.perf_counter()
    values["restart all: CLI returned (s)"] = timed(lambda: run([*mgr.cli, "restart", "all"], mgr.env))
    wait_online(mgr, count, old)
    values["restart all: all online again (s)"] = time.perf_counter() - began
    for name, pid in helpers.items():
        values[f"{name} CPU during restart (s)"] = cpu_seconds(pid) - before[name]
    values["delete all (s)"] = timed(lambda: run([*mgr.cli, "delete", "all"], mgr.env))
    return figures


def measured(results: list[Figures], mgr: Manager, eco: Path, count: int, daemon_pid: Callable[[], int]) -> None:
    """measure() into `results`; a step that fails is said and skipped; the manager's apps are deleted after."""
    try:
        results.append(measure(mgr, eco, count, daemon_pid))
    except BenchError as error:
        print(f"{mgr.label}: {error}", flush=True)
    finally:
        run([*mgr.cli, "delete", "all"], mgr.env, check=False)


def pm2_daemon(mgr: Pm2) -> Callable[[], int]:
    return lambda: pm2_god_pid(mgr)


def god_daemon(mgr: Manager) -> Callable[[], int]:
    def pid() -> int:
        shown = run(["systemctl", "--user", "show", "-P", "MainPID", GOD_UNIT], mgr.env).stdout.strip()
        return int(shown or 0)
    return pid


def systemd_floor(env: dict[str, str], count: int) -> Figures:
    """floor_many.py: the same number of bare transient units started, then stopped, with systemd's CPU."""
    figures = Figures("systemd")
    helpers = systemd_pids()
    before = {name: cpu_seconds(pid) for name, pid in helpers.items()}
    prefix = f"pmsdscale-{os.getpid()}-"
    try:
        out = run([floor_python(), str(Path(__file__).with_name("floor_many.py")), prefix, str(count)], env).stdout
        times = json.loads(out)
        figures.values["start: all online (s)"] = times["start"]
        figures.values["delete all (s)"] = times["stop"]
    except (BenchError, ValueError, KeyError) as error:
        figures.notes.append(f"floor failed: {error}")
    finally:
        run(["systemctl", "--user", "stop", f"{prefix}*"], env, check=False)
    for name, pid in helpers.items():
        figures.values[f"{name} CPU during start and stop (s)"] = cpu_seconds(pid) - before[name]
    return figures


def report(results: list[Figures], count: int) -> None:
    keys = list(dict.fromkeys(key for figures in results for key in figures.values))
    labels = [figures.label for figures in results]
    print(f"\n{count} apps (/bin/sleep), one run.\n")
    print(f"  {'':42s}" + "".join(f"{label:>14s}" for label in labels) + "   pmsd/pm2  pmsd/systemd")
    by_label = {figures.label: figures.values for figures in results}
    for key in keys:
        cells = [by_label[label].get(key) for label in labels]
        line = f"  {key:42s}" + "".join(f"{c:14.2f}" if c is not None else f"{'-':>14s}" for c in cells)
        pmsd = by_label.get("pmsd", {}).get(key)
        for other in ("pm2", "systemd"):
            value = by_label.get(other, {}).get(key)
            line += f"   {pmsd / value:7.2f}x" if value and pmsd is not None else f"{'':11s}"
        print(line.rstrip())
    for figures in results:
        for note in figures.notes:
            print(f"  {figures.label}: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-pm2", action="store_true")
    args = parser.parse_args(argv)
    env = bench_env()
    become_subreaper()
    results: list[Figures] = []
    with scratch_dir() as scratch:
        eco = ecosystem(scratch / "scale.json", args.apps)
        if not args.skip_pm2:
            pm2 = setup_pm2(scratch, env)
            pm2.start_extra = []
            run([*pm2.cli, "ping"], pm2.env)
            try:
                measured(results, pm2, eco, args.apps, pm2_daemon(pm2))
            finally:
                pm2.kill()
        pmsd = find_pmsd(env, scratch / "state")
        if pmsd is not None:
            with god_serving(pmsd):
                measured(results, pmsd, eco, args.apps, god_daemon(pmsd))
        results.append(systemd_floor(env, args.apps))
    reap_orphans()
    report(results, args.apps)
    if args.json:
        args.json.write_text(json.dumps({"apps": args.apps, "results": [vars(f) for f in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
