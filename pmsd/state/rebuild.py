"""Relisting apps from the units systemd runs, when pmsd's registry, its backup and the last save are all gone.

Every app unit carries what `pmsd ls` needs to list it again: its name and instance (the unit's name,
pmsd.systemd.names), its program (ExecStart=), its directory (WorkingDirectory=), its user and group, and its
environment file, whose name gives a fork app's id back (<state>/env/<id>.env). Options only pmsd's registry
held (restart policy, watch, log files, cron, ...) come back as their defaults, and the warning says so: the
apps are listed and can be stopped, restarted or deleted, and a restart from their ecosystem file puts their
options back.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time

from pmsd.definition.interpreter import INTERPRETER_BY_EXTENSION
from pmsd.model.record import AppRecord, RegistryData
from pmsd.model.spec import AppSpec
from pmsd.systemd.bus import Manager
from pmsd.systemd.names import RESERVED_NAMES, UNIT_PREFIX, app_of_unit
from pmsd.systemd.properties import decode_all
from pmsd.systemd.states import ActiveState

# D-Bus signatures (org.freedesktop.systemd1.Service(5)): ExecStart= as (path, argv, ignore failure, times...)
EXEC_START = ("ExecStart", "a(sasbttttuii)")
ENVIRONMENT_FILES = ("EnvironmentFiles", "a(sb)")
WORKING_DIRECTORY = ("WorkingDirectory", "s")
USER, GROUP = ("User", "s"), ("Group", "s")
INTERPRETERS = frozenset(os.path.basename(program) for program in INTERPRETER_BY_EXTENSION.values()) | {"nodejs"}


def rebuild_from_units(manager: Manager, env_dir: str) -> RegistryData:
    """A registry listing the app units systemd has loaded (running ones first in mind: stopped transient units
    are gone already); ids from the env files where they tell it, new ones above them otherwise."""
    records: list[AppRecord] = []
    unnumbered: list[AppRecord] = []
    for listing in manager.list_units([f"{UNIT_PREFIX}*.service"]):
        parsed = app_of_unit(listing.name)
        if parsed is None or parsed[0] in RESERVED_NAMES or listing.active_state == ActiveState.INACTIVE:
            continue
        record = _record(manager, listing.name, parsed[0], parsed[1], env_dir)
        if record is not None:
            (records if record.pm_id >= 0 else unnumbered).append(record)
    next_id = max((record.pm_id + 1 for record in records), default=0)
    for record in unnumbered:
        record.pm_id, next_id = next_id, next_id + 1
    apps = records + unnumbered
    _count_instances(apps)
    return RegistryData(next_id=next_id, apps=apps)


def _record(manager: Manager, unit: str, name: str, instance: int | None, env_dir: str) -> AppRecord | None:
    commands = decode_all(manager.service_property(unit, *EXEC_START))
    if not commands:
        return None
    path, argv = str(commands[0][0]), [str(word) for word in commands[0][1]]
    env_files = [str(entry[0]) for entry in decode_all(manager.service_property(unit, *ENVIRONMENT_FILES))]
    pm_id = -1  # a cluster instance's env file is named by its unit, not its id
    for env_file in env_files:
        stem, ext = os.path.splitext(os.path.basename(env_file))
        if os.path.dirname(env_file) == env_dir and ext == ".env" and stem.isdigit():
            pm_id = int(stem)
    interpreter, script, args = _program(path, argv)
    spec = AppSpec(name=name, script=script, interpreter=interpreter, exec_path=path, argv=tuple(argv), args=args,
                   cwd=str(decode_all(manager.service_property(unit, *WORKING_DIRECTORY))) or "/",
                   user=str(decode_all(manager.service_property(unit, *USER))) or None,
                   group=str(decode_all(manager.service_property(unit, *GROUP))) or None,
                   exec_mode="cluster" if instance is not None else "fork")
    return AppRecord(pm_id=pm_id, spec=spec, created_at=int(time.time() * 1000), instance=instance)


def _program(path: str, argv: list[str]) -> tuple[str, str, tuple[str, ...]]:
    """(interpreter, script, args) of an ExecStart=: an interpreter pmsd picks by extension runs the first
    word after its own options (and the value of --require, the Node preload); any other program is the
    script itself."""
    program = os.path.basename(path)
    if program not in INTERPRETERS and not re.fullmatch(r"python[0-9.]*", program):
        return "none", path, tuple(argv[1:])
    words = argv[1:]
    index = 0
    while index < len(words) and words[index].startswith("-"):
        index += 2 if words[index] in ("--require", "-r") else 1
    if index >= len(words):
        return path, path, ()
    return path, words[index], tuple(words[index + 1:])


def _count_instances(apps: list[AppRecord]) -> None:
    """Instances of one app share a spec that knows how many there are."""
    counts: dict[str, int] = {}
    for record in apps:
        if record.instance is not None:
            counts[record.name] = counts.get(record.name, 0) + 1
    for record in apps:
        if record.instance is not None:
            record.spec = dataclasses.replace(record.spec, instances=counts[record.name])

