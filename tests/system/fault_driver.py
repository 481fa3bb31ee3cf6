"""Issue 19's faults in system mode, run inside a booted machine as root (tests/system/test_package.py): root
starts and deletes an app that runs as another user (`--uid`), next to a bystander app, and before each step of
the command (tests/e2e/faulty.py: every job asked of systemd, file committed or removed, request to god) the CLI
or the system god is killed with SIGKILL. After each, the user suite's checks (tests/e2e/faultcheck.py) on the
system registry: `pmsd --system jlist` answers, ids are unique, the registry and god's counters parse, no unit of
these apps runs without pmsd listing it, the bystander keeps its pid, the command finished or said why not, and
the command run again leaves the apps as promised.

Usage (inside, from a copy of tests/): python3 -m tests.system.fault_driver USER APPS_DIR
Prints one JSON line: {operation: {fault: {"steps": n, "survived": n, "failures": [...]}}}.
Only this driver's own processes (the faulty CLI) and the system god it asks about are signalled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from pmsd.context import Context
from tests.e2e.faultcheck import Promise, Scene, after_fault

PMSD = ["/usr/bin/pmsd", "--system"]
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAULTS = ("kill-cli", "kill-god")


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=SOURCE,
                          env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": SOURCE, **(env or {})})


def pmsd(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([*PMSD, *args])


def faulty(argv: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "tests.e2e.faulty", "--system", *argv], env)


def units() -> dict[str, str]:
    listing = _run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "pmsd-f*.service"]).stdout
    return {line.split()[0]: line.split()[2] for line in listing.splitlines() if line.strip()}


def jlist() -> list[dict[str, Any]]:
    listed = pmsd("jlist")
    if listed.returncode != 0 or "Traceback" in listed.stderr:
        raise RuntimeError(f"jlist failed: {listed.stderr.strip()[-400:]}")
    apps: list[dict[str, Any]] = json.loads(listed.stdout)
    return apps


def clear() -> None:
    """This driver's apps gone (only them: the machine's other tests keep theirs)."""
    for name in ("fn", "fb"):
        pmsd("delete", name)
    strays = list(units())
    if strays:  # a unit pmsd forgot (reported as a failure): stopped, so the next round starts clean
        _run(["systemctl", "stop", *strays])
        _run(["systemctl", "reset-failed", *strays])


def set_scene(scene: tuple[tuple[str, ...], ...], start_bystander: tuple[str, ...]) -> int:
    clear()
    for argv in (start_bystander, *scene):
        result = pmsd(*argv)
        if result.returncode != 0:
            raise RuntimeError(f"{argv}: {result.stderr.strip()}")
    return int(next(app["pid"] for app in jlist() if app["name"] == "fb"))


def god_pid() -> str:
    pmsd("ping")
    return _run(["systemctl", "show", "-P", "MainPID", "pmsd-god.service"]).stdout.strip()


def main() -> int:
    user, apps_dir = sys.argv[1], sys.argv[2]
    sleeper = os.path.join(apps_dir, "sleeper.py")
    start = ("start", sleeper, "--name", "fn", "--uid", user)
    bystander = ("start", sleeper, "--name", "fb", "--uid", user)
    operations: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[str, ...], Promise]] = {
        "start": ((), start, Promise({"n": 1})),
        "delete": ((start,), ("delete", "fn"), Promise({}, absent=("n",))),
    }
    scene = Scene(pmsd, units, Context(user=False).state_dir, "f")
    table: dict[str, dict[str, dict[str, Any]]] = {}
    trace = "/tmp/pmsd-fault-trace"
    try:
        for name, (commands, argv, promise) in operations.items():
            set_scene(commands, bystander)
            if os.path.exists(trace):
                os.unlink(trace)
            dry = faulty(argv, {"PMSD_FAULT_TRACE": trace})
            if dry.returncode != 0:
                raise RuntimeError(f"dry run of {argv}: {dry.stderr.strip()}")
            with open(trace, encoding="utf-8") as handle:
                steps = handle.read().splitlines()
            for fault in FAULTS:
                tally: dict[str, Any] = {"steps": len(steps), "survived": 0, "failures": []}
                for number, step in enumerate(steps, start=1):
                    pid = set_scene(commands, bystander)
                    env = {"PMSD_FAULT": f"{fault}@{number}"}
                    if fault == "kill-god":
                        env["PMSD_FAULT_GOD_PID"] = god_pid()
                    problem = after_fault(scene, faulty(argv, env), pid, argv, promise)
                    if problem:
                        tally["failures"].append(f"before step {number} ({step}): {problem}")
                    else:
                        tally["survived"] += 1
                table.setdefault(name, {})[fault] = tally
    finally:
        clear()
        # Each kill-god step made systemd start god again: up to 10 in a minute (StartLimitBurst=), so the next
        # start (the machine's next test upgrading the package, whose postinst restarts god) could be refused
        # as start-limit-hit. The counter goes back as it was found (systemd.unit(5), StartLimitIntervalSec=).
        _run(["systemctl", "reset-failed", "pmsd-god.service"])
    print(json.dumps(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
