"""Unit files pmsd writes into the manager's runtime unit directory (a cluster app's template, socket and
holder; god's own unit for a pip install). Like transient units they are gone after a reboot."""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Mapping

from pmsd.state.atomic import write_if_changed
from pmsd.systemd.names import listener_unit, socket_unit, template_unit
from pmsd.systemd.paths import runtime_unit_dir


def write_units(user: bool, environ: Mapping[str, str], files: Mapping[str, str]) -> list[str]:
    """Write the files whose text changed (atomically); the names of those that did."""
    directory = runtime_unit_dir(user, environ)
    return [unit for unit, text in files.items() if write_if_changed(os.path.join(directory, unit), text)]


def remove_units(user: bool, environ: Mapping[str, str], units: list[str]) -> None:
    directory = runtime_unit_dir(user, environ)
    for unit in units:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, unit))


def dropin_path(unit: str, name: str) -> str:
    """A drop-in of the unit, relative to the runtime unit directory (systemd.unit(5), "<unit>.d/*.conf")."""
    return os.path.join(f"{unit}.d", name)


def read_dropin(user: bool, environ: Mapping[str, str], unit: str, name: str) -> str | None:
    with contextlib.suppress(FileNotFoundError), open(
            os.path.join(runtime_unit_dir(user, environ), dropin_path(unit, name)), encoding="utf-8") as handle:
        return handle.read()
    return None


def remove_dropin(user: bool, environ: Mapping[str, str], unit: str, name: str) -> None:
    """Remove the drop-in, and its directory once empty."""
    path = os.path.join(runtime_unit_dir(user, environ), dropin_path(unit, name))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with contextlib.suppress(OSError):  # not empty (someone else's drop-in), or already gone
        os.rmdir(os.path.dirname(path))


def installed_units(user: bool, environ: Mapping[str, str], name: str) -> list[str]:
    """The cluster app's unit files that exist."""
    directory = runtime_unit_dir(user, environ)
    return [unit for unit in (template_unit(name), socket_unit(name), listener_unit(name))
            if os.path.exists(os.path.join(directory, unit))]


def remove_leftovers(user: bool, environ: Mapping[str, str], name: str, dropin: str) -> None:
    """What a command killed mid-way can leave of a cluster app that is now gone: the temporary of a unit file it
    was writing (`<unit>.<pid>.tmp`, pmsd.state.atomic), and an instance's `dropin` (its log settings) written
    for an instance whose record never reached the registry (issue 19's fault matrix left both)."""
    directory = runtime_unit_dir(user, environ)
    units = (template_unit(name), socket_unit(name), listener_unit(name))
    instance_prefix = template_unit(name).split("@")[0] + "@"
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.endswith(".tmp") and entry.rsplit(".", 2)[0] in units:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))
        elif entry.startswith(instance_prefix) and entry.endswith(".service.d"):
            for temporary in glob.glob(os.path.join(glob.escape(os.path.join(directory, entry)), f"{dropin}.*.tmp")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            remove_dropin(user, environ, entry[:-2], dropin)
