"""What must hold after a fault (issue 19), for the user manager's suite (tests/e2e/test_faults.py) and the system
god's, inside a booted machine (tests/system/fault_driver.py): one set of checks for both scopes. No pytest here:
the system driver runs with the machine's Debian python3 alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pmsd.model.record import AppRecord
from pmsd.state.dump import SavedApp

UP = ("active", "activating", "reloading")


@dataclass(frozen=True)
class Scene:
    """Where the checks look: `pmsd ARGS` as the suite runs it (never raising), these apps' units with their
    ActiveState, the state directory of the registry it uses, and the prefix of these apps' names."""

    pmsd: Callable[..., subprocess.CompletedProcess[str]]
    units: Callable[[], dict[str, str]]
    state_dir: str
    prefix: str


@dataclass(frozen=True)
class Promise:
    """How the apps end once the operation is done (run again if the fault stopped it)."""

    online: Mapping[str, int]  # app -> instances online
    absent: tuple[str, ...] = ()  # apps that must not exist
    saved: tuple[str, ...] = ()  # apps the dump lists


def jlist(scene: Scene) -> tuple[list[dict[str, Any]] | None, str]:
    """The apps, or None and why `pmsd jlist` did not answer."""
    listed = scene.pmsd("jlist")
    if listed.returncode != 0 or "Traceback" in listed.stderr:
        return None, f"jlist failed: {listed.stderr.strip()[-400:]}"
    apps: list[dict[str, Any]] = json.loads(listed.stdout)
    return apps, ""


def broken(scene: Scene, bystander_pid: int) -> str | None:
    """What is wrong once pmsd next runs after the fault (None: nothing), before the command is run again."""
    apps, why = jlist(scene)
    if apps is None:
        return why
    ids = [app["pm_id"] for app in apps]
    if len(ids) != len(set(ids)):
        return f"ids given twice: {ids}"
    with open(os.path.join(scene.state_dir, "registry.json"), encoding="utf-8") as handle:
        records = [AppRecord.from_json(app) for app in json.load(handle)["apps"]]
    counters = os.path.join(scene.state_dir, "god-counters.json")
    if os.path.exists(counters):
        with open(counters, encoding="utf-8") as handle:
            json.load(handle)
    # What pmsd lists (jlist: the registry, and the records a killed command left pending whose units run).
    recorded = {record.unit for record in records} | {app["pm2_env"]["unit_name"] for app in apps}
    active = {unit for unit, state in scene.units().items() if state in UP}
    if active - recorded:
        return f"units running without a record (forgotten by pmsd): {sorted(active - recorded)}"
    bystander = [app for app in apps if app["name"] == f"{scene.prefix}b"]
    if not bystander or bystander[0]["pid"] != bystander_pid:
        return f"the bystander app was lost or restarted: {bystander}"
    return None


def finished(scene: Scene, promise: Promise) -> str | None:
    """None when the apps are as the operation promises."""
    apps, why = jlist(scene)
    if apps is None:
        return why
    for name, count in promise.online.items():
        mine = [app for app in apps if app["name"] == f"{scene.prefix}{name}"]
        online = [app for app in mine if app["pm2_env"]["status"] == "online"]
        if len(mine) != count or len(online) != count:
            return f"{name}: {len(online)} online of {len(mine)}, want {count}"
    for name in promise.absent:
        if any(app["name"] == f"{scene.prefix}{name}" for app in apps):
            return f"{name} still exists"
    if promise.saved:
        dump = os.path.join(scene.state_dir, "dump.json")
        if not os.path.exists(dump):
            return "nothing saved"
        with open(dump, encoding="utf-8") as handle:
            saved = {SavedApp.from_json(app).record.name for app in json.load(handle)["apps"]}
        missing = {f"{scene.prefix}{name}" for name in promise.saved} - saved
        if missing:
            return f"the dump lacks {sorted(missing)}"
    return None


def finish(scene: Scene, argv: tuple[str, ...], promise: Promise) -> str | None:
    """Run the command (argv, its names prefixed) again unless the killed one got its job done: then the apps
    must be as promised."""
    if finished(scene, promise) is None:
        return None
    again = scene.pmsd(*argv)
    if again.returncode != 0:
        return f"run again, it failed: {again.stderr.strip()[-400:]}"
    return finished(scene, promise)


def after_fault(scene: Scene, result: subprocess.CompletedProcess[str], bystander_pid: int, argv: tuple[str, ...],
                promise: Promise) -> str | None:
    """Every check of one faulty run: the command said nothing misleading (it was killed, finished, or said why
    not), nothing is broken, and running it again keeps the promise."""
    killed = result.returncode in (-9, 137)  # SIGKILL, as subprocess or a shell reports it
    if "Traceback" in result.stderr or not (killed or result.returncode == 0 or "[pmsd][ERROR]" in result.stderr):
        return f"the command said {result.returncode}: {result.stderr.strip()[-400:]}"
    return broken(scene, bystander_pid) or finish(scene, argv, promise)
