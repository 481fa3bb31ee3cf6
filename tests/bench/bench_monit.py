#!/usr/bin/env python3
"""Monitor benchmark: `pmsd monit` against `pm2 monit`, each in an 80x24 terminal with the same idle apps.

    python3 tests/bench/bench_monit.py [--apps 10] [--idle 30] [--reps 5] [--skip-pm2] [--json PATH]

Each monitor runs in a pane of a private tmux server (tests/e2e/tmux.py), as a person over SSH would see it:
  first frame  from the pane's command being launched (tmux respawn-pane) until capture-pane shows a whole
               frame: for pmsd its title with the app count and its key line; for PM2 its Metadata box and an
               app's name. The screen is polled every 5 ms (each capture is a tmux client process, ~3 ms), so
               figures are ~10 ms coarse. Median of --reps, after one discarded warm-up run;
  idle CPU     utime+stime of the monitor's process tree over --idle seconds with nothing changing, and of the
               daemon that answers it (pmsd's god, PM2's God daemon) over the same window, as a % of one CPU;
               the monitor's RSS at the end.

pmsd is measured twice: god up (a private god unit as tests/bench/bench_god.py runs it, so pmsd-god.service is
left alone) and god down (PMSD_NO_GOD=1: monit asks systemd itself every second). PM2 is npm-installed as
bench_core.py does (private PM2_HOME). Not a pytest test: it prints a table and, with --json, writes the figures.
Everything it starts (apps, god unit, PM2, tmux servers) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Run as a script, this file's directory is sys.path[0]; the repository root makes `tests.bench.bench_core`
# importable under the same name mypy knows it by (tests/ is a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_core import (
    Apps,
    BenchError,
    Manager,
    Pm2,
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
from tests.bench.bench_god import CLK_TCK, God, children, cpu_ticks, pm2_god_pid, rss_mib
from tests.e2e.tmux import Tmux

FRAME_TIMEOUT_S = 30.0
POLL_S = 0.005
SETTLE_S = 3.0  # after the first frame, before the idle window: start-up work must not count


@dataclass
class Result:
    label: str
    first_frame_ms: list[float] = field(default_factory=list)
    idle_cpu_percent: float | None = None
    daemon_cpu_percent: float | None = None
    rss_mib: float | None = None
    error: str | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.first_frame_ms) if self.first_frame_ms else None


@dataclass
class Monitor:
    """One monitor to measure: its command line and environment, what its whole first frame shows, and the pid
    of the daemon that answers it (0: none)."""

    label: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[str], bool]
    daemon_pid: Callable[[], int]
    quit_keys: tuple[str, ...] = ("q",)


def tree(pid: int) -> list[int]:
    """pid and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children(current))
    return found


def tree_ticks(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += cpu_ticks(pid)
        except OSError:
            continue  # ended during the window
    return total


def first_frame(monitor: Monitor, cwd: Path, name: str) -> float:
    """ms from launching the monitor until its whole first frame is on the screen."""
    terminal = Tmux(monitor.env, name)
    try:
        terminal.create(str(cwd))
        began = time.perf_counter()
        terminal.launch(monitor.argv, str(cwd))
        while not monitor.ready(terminal.screen()):
            if time.perf_counter() - began > FRAME_TIMEOUT_S:
                raise BenchError(f"{monitor.label}: no whole frame in {FRAME_TIMEOUT_S:.0f} s; the screen:\n"
                                 f"{terminal.screen()}")
            time.sleep(POLL_S)
        elapsed = (time.perf_counter() - began) * 1000
        terminal.keys(*monitor.quit_keys)
        return elapsed
    finally:
        terminal.close()


def idle_cost(monitor: Monitor, cwd: Path, name: str, seconds: float, result: Result) -> None:
    """CPU of the monitor (and of its daemon) over `seconds` with nothing happening, and the monitor's RSS."""
    terminal = Tmux(monitor.env, name)
    try:
        terminal.start(monitor.argv, str(cwd))
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        while not monitor.ready(terminal.screen()):
            if time.monotonic() > deadline:
                raise BenchError(f"{monitor.label}: no whole frame in {FRAME_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        time.sleep(SETTLE_S)
        pids = [pid for pid in tree(terminal.pane_pid()) if pid]
        daemon = monitor.daemon_pid()
        before, daemon_before = tree_ticks(pids), cpu_ticks(daemon) if daemon else 0
        time.sleep(seconds)
        after, daemon_after = tree_ticks(pids), cpu_ticks(daemon) if daemon else 0
        result.idle_cpu_percent = 100.0 * (after - before) / CLK_TCK / seconds
        result.daemon_cpu_percent = 100.0 * (daemon_after - daemon_before) / CLK_TCK / seconds if daemon else None
        result.rss_mib = sum(rss_mib(pid) for pid in pids if os.path.exists(f"/proc/{pid}"))
        terminal.keys(*monitor.quit_keys)
    finally:
        terminal.close()


def measure(monitor: Monitor, cwd: Path, reps: int, seconds: float) -> Result:
    result = Result(monitor.label)
    print(f"== {monitor.label} ==", flush=True)
    try:
        samples = [first_frame(monitor, cwd, f"pmsdbench-{os.getpid()}-{rep}") for rep in range(reps + 1)]
        result.first_frame_ms = samples[1:]  # the first one fills page and bytecode caches
        print(f"  first frame: median {result.median_ms:.0f} ms of {result.first_frame_ms}", flush=True)
        idle_cost(monitor, cwd, f"pmsdbench-{os.getpid()}-idle", seconds, result)
        print(f"  idle {seconds:g} s: monitor {result.idle_cpu_percent:.2f}% CPU, daemon "
              f"{_percent(result.daemon_cpu_percent)}, RSS {result.rss_mib:.1f} MiB", flush=True)
    except (BenchError, RuntimeError, OSError) as error:
        result.error = str(error)
        print(f"  FAILED: {error}", flush=True)
    return result


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def pmsd_monitors(pmsd: Manager, god: God, apps: int) -> list[Monitor]:
    title = f"pmsd monit · {apps} apps"

    def ready(screen: str) -> bool:
        return title in screen and "q quit" in screen

    god_up = {key: value for key, value in pmsd.env.items() if key != "PMSD_NO_GOD"}  # asks the private god
    god_down = {key: value for key, value in pmsd.env.items() if key != "PMSD_GOD_SOCKET"} | {"PMSD_NO_GOD": "1"}
    return [Monitor("pmsd monit (god up)", [*pmsd.cli, "monit"], god_up, ready, god.main_pid),
            Monitor("pmsd monit (god down)", [*pmsd.cli, "monit"], god_down, ready, lambda: 0)]


def pm2_monitor(pm2: Pm2, names: Sequence[str]) -> Monitor:
    def ready(screen: str) -> bool:
        return "Metadata" in screen and any(name in screen for name in names)

    return Monitor("pm2 monit", [*pm2.cli, "monit"], pm2.env, ready, lambda: pm2_god_pid(pm2))


def print_report(results: Sequence[Result], apps: int, seconds: float) -> None:
    print(f"\n{apps} idle apps, 80x24 terminal (tmux)")
    print(f"{'':24} {'first frame ms':>15} {'idle CPU':>10} {'daemon CPU':>11} {'RSS MiB':>8}")
    for result in results:
        median = "-" if result.median_ms is None else f"{result.median_ms:.0f}"
        rss = "-" if result.rss_mib is None else f"{result.rss_mib:.1f}"
        failed = f"  FAILED: {result.error}" if result.error else ""
        print(f"{result.label:24} {median:>15} {_percent(result.idle_cpu_percent):>10} "
              f"{_percent(result.daemon_cpu_percent):>11} {rss:>8}{failed}")
    print(f"idle CPU over {seconds:g} s, % of one CPU; daemon: god or PM2's God answering the monitor meanwhile")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10, help="idle apps per manager (default 10)")
    parser.add_argument("--idle", type=float, default=30.0, help="idle CPU window, seconds (default 30)")
    parser.add_argument("--reps", type=int, default=5, help="first-frame repetitions (default 5)")
    parser.add_argument("--skip-pm2", action="store_true", help="measure pmsd only")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed (apt-get install tmux)")
    env = bench_env()
    become_subreaper()
    began, load_before = time.monotonic(), os.getloadavg()
    prefix = f"mb{os.getpid()}"
    results: list[Result] = []
    with scratch_dir() as scratch:
        apps = Apps(scratch / "apps")
        pmsd = find_pmsd(env, scratch / "state")
        if pmsd is None:
            raise SystemExit("pmsd is not usable; see above")
        god = God.make(env, scratch, private=True)
        god.configure(pmsd)
        god.check_free(False)
        try:
            god.start(pmsd)
            pmsd.bulk_start(apps, [f"{prefix}-pmsd-{k:03d}" for k in range(args.apps)])
            god.wait_follows(args.apps)
            for monitor in pmsd_monitors(pmsd, god, args.apps):
                results.append(measure(monitor, scratch, args.reps, args.idle))
        finally:
            god.stop(pmsd)
            stop_leftover_units(f"pmsd-{prefix}-*", env)
        if not args.skip_pm2:
            pm2 = setup_pm2(scratch, env)
            names = [f"{prefix}-pm2-{k:03d}" for k in range(args.apps)]
            try:
                run([*pm2.cli, "ping"], pm2.env)
                pm2.bulk_start(apps, names)
                results.append(measure(pm2_monitor(pm2, names), scratch, args.reps, args.idle))
            finally:
                pm2.kill()
                reap_orphans()
    print_report(results, args.apps, args.idle)
    meta = machine_meta(began, load_before)
    if args.json:
        meta["pm2"] = pm2_version()
        args.json.write_text(json.dumps({"meta": meta, "apps": args.apps, "idle_s": args.idle,
                                         "results": [asdict(result) for result in results]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
