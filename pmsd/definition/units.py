"""Turn an app definition into systemd settings, from the settings table: transient D-Bus properties
for StartTransientUnit, and the equivalent unit-file text (for `pmsd describe`, golden tests, and units
that cannot be transient).

The values were checked when the definition was built (pmsd.definition.build); every line is checked once more
as it is rendered (pmsd.definition.unitvalues.line_problem), transient properties included: systemd writes
those into a unit file too, which a daemon-reload reads back."""

from __future__ import annotations

from dataclasses import dataclass

from pmsd.definition.environment import runs_as_another_user
from pmsd.definition.settings import SETTINGS, Directive, Setting
from pmsd.definition.unitvalues import line_problem
from pmsd.errors import UsageError
from pmsd.model.spec import AppSpec, UnitInputs, stderr_file, stdout_file
from pmsd.systemd.properties import UnitProperty


@dataclass(frozen=True)
class Assignment:
    setting: Setting
    directive: Directive
    value: object  # as it travels on the bus

    @property
    def text(self) -> str:
        return self.directive.render(self.value)

    @property
    def line(self) -> str:
        """The unit-file line, refused if systemd could not read it back as this one line."""
        self.check()
        return f"{self.directive.name}={self.text}"

    @property
    def lines(self) -> list[str]:
        """The unit-file lines: one, or one per element of a repeated directive's list (ListenStream=)."""
        self.check()
        return [f"{self.directive.name}={text}" for text in self.texts]

    @property
    def texts(self) -> list[str]:
        if self.directive.repeated and isinstance(self.value, list):
            return [self.directive.render([element]) for element in self.value]
        return [self.text]

    def problem(self) -> str | None:
        return next(filter(None, (line_problem(f"{self.directive.name}={text}") for text in self.texts)), None)

    def check(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise UsageError(f"{self.setting.key!r} cannot be written into a systemd unit: {problem}")


def check_scope(spec: AppSpec, system: bool) -> None:
    """Refuse options that only mean something to the system manager, before anything is created (no manager
    version needed for that)."""
    assignments(UnitInputs(spec, env_file="", system=system), version=0, check_version=False)
    assignments(UnitInputs(spec, env_file="", system=system), version=0, unit_type="socket", check_version=False)


def check_log_files(spec: AppSpec, system: bool, caller_uid: int) -> None:
    """Cluster instances come from a template unit file, which can take no descriptors: systemd itself would
    open their log files, as root, in a place the app's user controls. Refused for apps that run as another
    user; fork apps get files pmsd opened with the user's rights (pmsd.api.launch.open_log_files)."""
    files = [path for path in (stdout_file(spec), stderr_file(spec)) if path]
    if spec.clustered and files and runs_as_another_user(spec.user, system, caller_uid):
        raise UsageError(
            f"app {spec.name!r}: cluster instances that run as {spec.user} cannot log to {files[0]}: systemd "
            "would open it as root, in a place that user controls",
            "leave out_file/error_file/log_file unset (the journal keeps every line: `pmsd logs`), or run the "
            "app in fork mode",
        )


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
    properties = []
    for assignment in assignments(inputs, version):
        # systemd writes every property into the transient unit's file (see the module docstring).
        assignment.check()
        properties.append(UnitProperty(assignment.directive.dbus_name, assignment.directive.signature,
                                       assignment.value))
    return properties


def unit_text_problem(spec: AppSpec) -> tuple[str, str] | None:
    """(setting key, problem) of the first unit-file line the definition would render that systemd could not read
    back as that one line, or None. Rendered for the system manager, so that every directive is in."""
    inputs = UnitInputs(spec, env_file="", system=True)
    for unit_type in ("service", "socket"):
        for assignment in assignments(inputs, version=0, unit_type=unit_type, check_version=False):
            problem = assignment.problem()
            if problem is not None:
                return assignment.setting.key, problem
    return None


_UNIT_SECTION = frozenset({"Description", "StartLimitBurst", "StartLimitIntervalSec"})


def render_unit_file(inputs: UnitInputs, version: int) -> str:
    """The unit file equivalent to the transient unit pmsd creates (what `systemctl cat` would show)."""
    unit_lines: list[str] = []
    service_lines: list[str] = []
    for assignment in assignments(inputs, version):
        line = assignment.line
        (unit_lines if assignment.directive.name in _UNIT_SECTION else service_lines).append(line)
    return "[Unit]\n" + "\n".join(unit_lines) + "\n\n[Service]\n" + "\n".join(service_lines) + "\n"
