"""A cluster app's unit files: the template pmsd-<app>@.service, and for apps with a port (declared, or found
listening: pmsd.state.ports) the socket unit pmsd-<app>.socket plus its holder pmsd.listen-<app>.service.

They cannot be transient: `Sockets=` is not a transient setting and a transient socket's `Service=` is not
settable (systemd's docs/TRANSIENT-SETTINGS.md). So pmsd renders them from templates/ with jinja2 into the
manager's runtime unit directory, which, like transient units, is gone after a reboot. The service lines come
from the settings table, the same rows that make a fork app's transient properties. A file is rewritten only
when its text changed, and the manager reloads only when a loaded unit says it needs to (NeedDaemonReload):
new files are found without a reload, and running instances whose definition did not change are left alone.
"""

from __future__ import annotations

import os
import sys

from pmsd.definition.settings import check_env_file
from pmsd.definition.units import assignments
from pmsd.definition.unitvalues import glob_escape, literal
from pmsd.model.spec import UnitInputs
from pmsd.systemd.names import escape_name, instance_env_file_name, listener_unit, socket_unit, template_unit

_UNIT_SECTION = frozenset({"StartLimitBurst", "StartLimitIntervalSec"})
_TEMPLATED = frozenset({"Description", "EnvironmentFile"})  # spelled by the template itself
# Each instance has its own log files (PM2's -<pm_id> suffix) or god's pipes for them: in a drop-in per instance.
_PER_INSTANCE = frozenset({"StandardOutput", "StandardError"})
LOG_DROPIN = "pmsd-logs.conf"
# The holder is passed the socket too (it is the socket's Service=), and systemd sets the socket's O_NONBLOCK as
# the NonBlocking= of every service it starts with it: the holder must say what the instances say
# (settings._non_blocking).
_HOLDER = frozenset({"NonBlocking"})


def templates_dir() -> str:
    """templates/ beside the package (a source tree or editable install), else where a wheel or a distro
    package puts it (share/pmsd/templates)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for candidate in (os.path.join(here, "templates"), os.path.join(sys.prefix, "share", "pmsd", "templates"),
                      "/usr/share/pmsd/templates", "/usr/local/share/pmsd/templates"):
        if os.path.exists(os.path.join(candidate, "instance.service.j2")):
            return candidate
    raise FileNotFoundError("pmsd's unit templates (instance.service.j2) are not installed")


def render_cluster_units(inputs: UnitInputs, version: int) -> dict[str, str]:
    """unit name -> file text for the app's template, and its socket and holder when it has a port."""
    import jinja2  # lazy: ~110 ms; only cluster apps render unit files, `ls` and fork apps never do

    spec = inputs.spec
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir()), keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined, autoescape=False)
    unit_lines: list[str] = []
    service_lines: list[str] = []
    for assignment in assignments(inputs, version):
        if assignment.directive.name in _TEMPLATED | _PER_INSTANCE:
            continue
        line = assignment.line
        (unit_lines if assignment.directive.name in _UNIT_SECTION else service_lines).append(line)
    socket = socket_unit(spec.name) if inputs.listen else None
    common = {"name": spec.name, "escaped": escape_name(spec.name), "description": literal(spec.name),
              "socket": socket, "listener": listener_unit(spec.name), "template": template_unit(spec.name)}
    files = {template_unit(spec.name): environment.get_template("instance.service.j2").render(
        unit_lines=unit_lines, service_lines=service_lines, env_file=_instance_env_file(inputs), **common)}
    if socket is not None:
        socket_lines = [line for a in assignments(inputs, version, unit_type="socket") for line in a.lines]
        files[socket] = environment.get_template("app.socket.j2").render(socket_lines=socket_lines, **common)
        holder_lines = [a.line for a in assignments(inputs, version) if a.directive.name in _HOLDER]
        files[listener_unit(spec.name)] = environment.get_template("listener.service.j2").render(
            holder_lines=holder_lines, **common)
    return files


def render_log_dropin(inputs: UnitInputs, version: int) -> str:
    """One instance's drop-in: where its stdout and stderr go (inputs hold that instance's files or pipes). An
    instance with no line here logs to the journal, systemd's default."""
    lines = [a.line for a in assignments(inputs, version) if a.directive.name in _PER_INSTANCE]
    return "# Written by pmsd: this instance's output (its own log files, as PM2's).\n[Service]\n" + "".join(
        f"{line}\n" for line in lines)


def _instance_env_file(inputs: UnitInputs) -> str:
    """The template's EnvironmentFile=, one file per instance. systemd expands it as a glob, where the "\\" of the
    escaped app name (escape_name writes " " as \\x20) and any "*?[\\" of the state directory would not match
    themselves: both are glob-escaped (pmsd.definition.unitvalues). The name never holds "%" (escape_name writes
    \\x25), so only the directory needs specifier escaping, and "%i" stays a specifier."""
    check_env_file(inputs.env_file)
    directory = literal(glob_escape(os.path.dirname(inputs.env_file)))
    return directory + "/" + glob_escape(instance_env_file_name(inputs.spec.name, "%i"))
