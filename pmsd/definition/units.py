"""Turn an app definition into systemd settings, from the settings table: transient D-Bus properties
for StartTransientUnit, and the equivalent unit-file text (for `pmsd describe`, golden tests, and units
that cannot be transient)."""

from __future__ import annotations

from dataclasses import dataclass

from pmsd.definition.settings import SETTINGS, Directive, Setting
from pmsd.errors import UsageError
from pmsd.model.spec import AppSpec, UnitInputs
from pmsd.systemd.properties import UnitProperty


@dataclass(frozen=True)
class Assignment:
    setting: Setting
    directive: Directive
    value: object  # as it travels on the bus

    @property
    def text(self) -> str:
        return self.directive.render(self.value)


def check_scope(spec: AppSpec, system: bool) -> None:
    """Refuse options that only mean something to the system manager, before anything is created (no manager
    version needed for that)."""
    assignments(UnitInputs(spec, env_file="", system=system), version=0, check_version=False)
    if spec.port:
        assignments(UnitInputs(spec, env_file="", system=system), version=0, unit_type="socket",
                    check_version=False)


def assignments(inputs: UnitInputs, version: int, unit_type: str = "service",
                check_version: bool = True) -> list[Assignment]:
    """Every directive the definition sets for one unit type ("service", or "socket" for a cluster app's
    socket unit), checked against the running manager's version and scope."""
    out: list[Assignment] = []
    for setting in SETTINGS:
        for directive in setting.directives:
            if directive.unit_type != unit_type:
                continue
            value = directive.encode(inputs)
            if value is None:
                continue
            if directive.system_only and not inputs.system:
                raise UsageError(
                    f"app {inputs.spec.name!r}: {setting.key!r} ({directive.name}=) needs the system manager",
                    "run it with `pmsd --system start ...` as root, or drop the option for user mode",
                )
            if check_version and directive.min_version > version:
                raise UsageError(
                    f"app {inputs.spec.name!r}: {setting.key!r} needs systemd {directive.min_version} "
                    f"({directive.name}=), this manager is {version}",
                )
            out.append(Assignment(setting, directive, value))
    return out


def transient_properties(inputs: UnitInputs, version: int) -> list[UnitProperty]:
    return [UnitProperty(a.directive.dbus_name, a.directive.signature, a.value) for a in assignments(inputs, version)]


_UNIT_SECTION = frozenset({"Description", "StartLimitBurst", "StartLimitIntervalSec"})


def render_unit_file(inputs: UnitInputs, version: int) -> str:
    """The unit file equivalent to the transient unit pmsd creates (what `systemctl cat` would show)."""
    unit_lines: list[str] = []
    service_lines: list[str] = []
    for assignment in assignments(inputs, version):
        line = f"{assignment.directive.name}={assignment.text}"
        (unit_lines if assignment.directive.name in _UNIT_SECTION else service_lines).append(line)
    return "[Unit]\n" + "\n".join(unit_lines) + "\n\n[Service]\n" + "\n".join(service_lines) + "\n"
