#!/usr/bin/env python3
"""Boot benchmark (issue 14): from the manager's start to every one of N saved apps running.

    python3 tests/bench/bench_boot.py [--apps 50] [--reps 3] [--json PATH]

A "boot" of user mode ends the systemd user manager and starts it again (tests/harness/systemd-user.sh down,
up): every unit is gone, as after a reboot. Measured in one run, each the median of --reps boots:
  pmsd            `pmsd startup` + `pmsd save`: pmsd.resurrect.service runs `pmsd resurrect` as the manager starts
  pmsd, no god    the same with PMSD_NO_GOD=1 (resurrect starts the apps only)
  unit files      `pmsd export` of the same apps, installed and enabled in ~/.config/systemd/user: the design
                  pmsd did not choose (persistent unit files), and the floor of what systemd does at boot
  PM2             `pm2 resurrect` of `pm2 save`d apps after `pm2 kill`: PM2's startup unit is a system-manager
                  unit (pm2-<user>.service) and cannot run without systemd as PID 1 here, so its own resurrect,
                  which that unit runs, is timed from the command on
Every app is tests/bench/marker_app.py, which records its own start time; the figure is the last app's
start time minus the moment the manager (or `pm2 resurrect`) was started. Needs the harness's own user
manager (not a host booted with systemd, whose user manager it must not restart).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_core import (
    REPO_ROOT,
    Apps,
    BenchError,
    Manager,
    bench_env,
    find_pmsd,
    machine_meta,
    pm2_version,
    reap_orphans,
    run,
    scratch_dir,
    setup_pm2,
)

HARNESS = REPO_ROOT / "tests" / "harness" / "systemd-user.sh"
BOOT_TIMEOUT_S = 120.0


def reboot_manager(env: dict[str, str]) -> int:
    """End the user manager and start it again; the time_ns just before it starts."""
    run(["bash", str(HARNESS), "down"], env)
    started = time.time_ns()
    run(["bash", str(HARNESS), "up"], env)
    return started


def wait_all_started(apps: Apps, names: list[str], since_ns: int) -> float:
    """Seconds from since_ns to the last app's own start time, once every app started after since_ns."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        marks = [apps.read(name) for name in names]
        if all(mark is not None and mark[1] > since_ns for mark in marks):
            return (max(mark[1] for mark in marks if mark is not None) - since_ns) / 1e9
        time.sleep(0.01)  # when we look; the figure is the apps' own clock readings
    started = sum(1 for name in names if (mark := apps.read(name)) is not None and mark[1] > since_ns)
    raise BenchError(f"only {started} of {len(names)} apps started within {BOOT_TIMEOUT_S:.0f} s")


def median_of(reps: int, one: Callable[[], float]) -> tuple[float, list[float]]:
    figures = [one() for _ in range(reps)]
    return statistics.median(figures), figures


def pmsd_boots(pmsd: Manager, apps: Apps, names: list[str], reps: int, no_god: bool) -> list[float]:
    env = {key: value for key, value in pmsd.env.items() if key != "PMSD_NO_GOD"}
    if no_god:
        env["PMSD_NO_GOD"] = "1"  # `pmsd startup` carries it into the boot-time resurrect
    pmsd.env = env
    pmsd.bulk_start(apps, names)
    try:
        run([*pmsd.cli, "save"], env)
        run([*pmsd.cli, "startup"], env)
        return median_of(reps, lambda: wait_all_started(apps, names, reboot_manager(env)))[1]
    finally:
        run([*pmsd.cli, "unstartup"], env, check=False)
        pmsd.delete_all()
        run([*pmsd.cli, "kill"], env, check=False)  # god, when it ran


def unit_file_boots(pmsd: Manager, apps: Apps, names: list[str], reps: int, scratch: Path) -> list[float]:
    """The same apps as exported unit files, enabled: systemd alone starts them at boot."""
    env = pmsd.env | {"PMSD_NO_GOD": "1"}
    pmsd.bulk_start(apps, names)
    export = scratch / "export"
    run([*pmsd.cli, "export", str(export)], env)
    pmsd.delete_all()
    unit_dir = Path.home() / ".config" / "systemd" / "user"
    env_root = Path.home() / ".config" / "pmsd-export"
    installed = [unit_dir / path.name for path in export.glob("*.service")]
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        for path in export.glob("*.service"):
            shutil.copy(path, unit_dir / path.name)
        shutil.copytree(export / "env", env_root / "env", dirs_exist_ok=True)
        run(["systemctl", "--user", "daemon-reload"], env)
        run(["systemctl", "--user", "enable", *[path.name for path in installed]], env)
        return median_of(reps, lambda: wait_all_started(apps, names, reboot_manager(env)))[1]
    finally:
        units = [path.name for path in installed]
        run(["systemctl", "--user", "disable", "--now", *units], env, check=False)
        for path in installed:
            path.unlink(missing_ok=True)
        shutil.rmtree(env_root, ignore_errors=True)
        run(["systemctl", "--user", "daemon-reload"], env, check=False)


def pm2_resurrects(scratch: Path, env: dict[str, str], apps: Apps, names: list[str], reps: int) -> list[float]:
    pm2 = setup_pm2(scratch, env)
    pm2.bulk_start(apps, names)
    try:
        run([*pm2.cli, "save"], pm2.env)

        def one() -> float:
            pm2.kill()  # the daemon and its apps are gone, as after a reboot
            started = time.time_ns()
            run([*pm2.cli, "resurrect"], pm2.env)
            return wait_all_started(apps, names, started)

        return median_of(reps, one)[1]
    finally:
        pm2.delete_all()
        pm2.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-pm2", action="store_true")
    args = parser.parse_args(argv)
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        print("this host is booted with systemd: its user manager is not the harness's to restart", file=sys.stderr)
        return 2
    env = bench_env()
    # Not a subreaper (unlike the other benches): the harness waits for the ended manager's pid to vanish, and
    # a subreaper would hold it as a zombie until reaped.
    began, load_before = time.monotonic(), os.getloadavg()
    results: dict[str, list[float]] = {}
    with scratch_dir() as scratch:
        pmsd = find_pmsd(env, scratch / "xdg-state")
        if pmsd is None:
            return 2
        try:
            for label, no_god in (("pmsd", False), ("pmsd, no god", True)):
                apps = Apps(scratch / label.replace(", ", "-").replace(" ", "-"))
                names = [f"boot{i}" for i in range(args.apps)]
                results[label] = pmsd_boots(pmsd, apps, names, args.reps, no_god)
                print(f"{label}: {results[label]}", flush=True)
            apps = Apps(scratch / "units")
            results["unit files"] = unit_file_boots(pmsd, apps, [f"unit{i}" for i in range(args.apps)], args.reps,
                                                    scratch)
            print(f"unit files: {results['unit files']}", flush=True)
            if not args.skip_pm2:
                apps = Apps(scratch / "pm2")
                results["PM2 resurrect"] = pm2_resurrects(scratch, env, apps, [f"p{i}" for i in range(args.apps)],
                                                          args.reps)
                print(f"PM2 resurrect: {results['PM2 resurrect']}", flush=True)
        finally:
            reap_orphans()
    floor = statistics.median(results["unit files"]) if "unit files" in results else None
    pm2 = statistics.median(results["PM2 resurrect"]) if "PM2 resurrect" in results else None
    print(f"\n{args.apps} apps, median of {args.reps} boots: seconds from start to the last app running")
    print(f"  {'':16s}{'s':>8s}{'/ unit files':>14s}{'/ PM2':>8s}")
    for label, figures in results.items():
        median = statistics.median(figures)
        ratios = [f"{median / base:.2f}x" if base else "-" for base in (floor, pm2)]
        print(f"  {label:16s}{median:8.2f}{ratios[0]:>14s}{ratios[1]:>8s}")
    if args.json:
        meta = {"apps": args.apps, "reps": args.reps, "pm2_version": pm2_version(), **machine_meta(began, load_before)}
        args.json.write_text(json.dumps({"meta": meta, "seconds": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, subprocess.SubprocessError) as error:
        print(f"bench_boot: {error}", file=sys.stderr)
        sys.exit(1)
