"""`pmsd export <dir>`: plain systemd unit files for pmsd's apps, which run without pmsd at all (for users who
outgrow pmsd, or who manage hosts with configuration management).

The units are the ones pmsd runs, rendered from the same settings table (pmsd.definition.units, unitfiles),
then made to stand alone:

- an `[Install]` section, which transient units cannot have, so that `systemctl enable` works;
- a cluster app gets a target, pmsd-<app>.target, that Wants= each registered instance: one
  `systemctl enable --now pmsd-<app>.target` brings them all up, at every boot. The template alone could only
  name one DefaultInstance=; its `WantedBy=pmsd-<app>.target` still lets `systemctl enable pmsd-<app>@<n>.service`
  add an instance, and its PartOf= has `systemctl stop|restart pmsd-<app>.target` reach every instance;
- cron_restart's timer triggers a oneshot that runs `systemctl restart`, not `pmsd restart`;
- each instance's environment file is copied to <dir>/env/ (0600), and EnvironmentFile= names where the README
  says to install it: EnvironmentFile= takes no relative path, but it does resolve specifiers (systemd.exec(5),
  systemd.unit(5) "Specifiers"), so a user unit names %h/.config/pmsd-export/env/<file>;
- Node apps need pmsd's preload (the shared socket, process.send('ready')): it is copied beside env/, and
  ExecStart= names its installed path instead of pmsd's package.

What only pmsd's god daemon does (file watching, exponential backoff, memory-triggered restarts) has no
directive in the settings table: each affected unit lists it in a `# not exported:` comment at its top.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from pmsd.api import cluster
from pmsd.api.targets import resolve_targets
from pmsd.context import Context
from pmsd.definition import settings
from pmsd.definition.cron import on_calendar
from pmsd.definition.environment import record_environment, runs_as_another_user
from pmsd.definition.preload import NODE_PRELOAD
from pmsd.definition.settings import SETTINGS, SYSTEMD_FLOOR, is_node
from pmsd.definition.unitfiles import render_cluster_units
from pmsd.definition.units import render_unit_file
from pmsd.definition.unitvalues import exec_argv, exec_word, literal
from pmsd.errors import NotFoundError, UsageError
from pmsd.model.record import AppRecord, RegistryData
from pmsd.model.spec import AppSpec, UnitInputs, stderr_file, stdout_file
from pmsd.state.atomic import write_atomic
from pmsd.state.envfiles import render_env_file
from pmsd.systemd.jobs import TIMER_ACCURACY_USEC
from pmsd.systemd.names import (
    UNIT_PREFIX,
    cron_service_unit,
    cron_timer_unit,
    escape_name,
    instance_env_file_name,
    instance_unit,
    service_unit,
    template_unit,
)

ENV_DIR = "env"
PRELOAD_FILE = "node-preload.js"
README = "README.txt"
# Rendered as the env files' directory, then replaced by the installed one: the renderers write a path as a
# literal ("%" doubled), which would turn the %h specifier of user mode into a plain "%h".
_PLACEHOLDER = "/pmsd-export-placeholder"

# Settings only god enforces (Setting.by_god), and what becomes of them without it. A test keeps this complete.
GOD_ONLY: dict[str, str] = {
    "watch": "pmsd god's file watching: restart the unit when you deploy",
    "ignore_watch": "pmsd god's file watching",
    "watch_delay": "pmsd god's file watching",
    # RestartSteps=/RestartMaxDelaySec= came in systemd 254; the settings table has no row for them.
    "exp_backoff_restart_delay": "pmsd god's exponential backoff: systemd restarts after RestartSec=, its cap",
    "max_memory_restart": "pmsd god's restart above a memory size; memory_max (MemoryMax=) is a hard limit",
    "log_max_size": "pmsd god's log rotation: systemd appends to the files; rotate them with logrotate",
    "log_retain": "pmsd god's log rotation",
    "log_compress": "pmsd god's log rotation",
    "log_rotate_interval": "pmsd god's log rotation",
}


@dataclass(frozen=True)
class Layout:
    """Where the exported files are installed on the host, for the user manager or the system one."""

    user: bool

    @property
    def root(self) -> str:
        """Unit-file text (a specifier in user mode) of the directory env/ and the preload go to."""
        return "%h/.config/pmsd-export" if self.user else "/etc/pmsd-export"

    @property
    def root_shell(self) -> str:
        return "~/.config/pmsd-export" if self.user else "/etc/pmsd-export"

    @property
    def unit_dir(self) -> str:
        return "~/.config/systemd/user" if self.user else "/etc/systemd/system"

    @property
    def wanted_by(self) -> str:
        return "default.target" if self.user else "multi-user.target"

    @property
    def systemctl(self) -> tuple[str, ...]:
        return ("systemctl", "--user") if self.user else ("systemctl",)


@dataclass(frozen=True)
class ExportFile:
    path: str  # relative to the export directory
    text: str
    mode: int = 0o644


def export_units(ctx: Context, directory: str, names: Sequence[str] | None = None, *, force: bool = False,
                 version: int = SYSTEMD_FLOOR) -> list[str]:
    """Write unit files, env files and a README for the registered apps (or those `names` means, PM2's target
    grammar) into `directory`; returns the paths written. `version` is the systemd the files are for: options
    needing a newer one are refused. Nothing is written unless every app renders."""
    apps = _apps(ctx.registry.read(), names)
    _check_directory(directory, force)
    layout = Layout(ctx.user)
    files = [file for records in apps for file in _app_files(ctx, records, layout, version)]
    files.append(ExportFile(README, render_readme(layout, apps, files)))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    written = []
    for file in files:
        path = os.path.join(directory, file.path)
        # env/ holds secrets: owner-only, like pmsd's own state directory.
        write_atomic(path, file.text, file.mode, dir_mode=0o700 if file.path.startswith(f"{ENV_DIR}/") else 0o755)
        written.append(path)
    return written


def _apps(data: RegistryData, names: Sequence[str] | None) -> list[list[AppRecord]]:
    """Every record of each app meant, grouped by app: one target naming a single instance exports its app."""
    chosen = data.apps if not names else resolve_targets(data, names)
    if not chosen:
        raise NotFoundError("no app is registered: there is nothing to export", "start apps with `pmsd start`")
    app_names = dict.fromkeys(record.name for record in sorted(chosen, key=lambda r: r.pm_id))
    return [data.instances_of(name) for name in app_names]


def _check_directory(directory: str, force: bool) -> None:
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"{directory} exists and is not a directory", "name a new or empty directory")
    if os.path.isdir(directory) and os.listdir(directory) and not force:
        raise UsageError(f"{directory} is not empty", "name a new or empty directory, or pass --force to "
                         "overwrite the files export writes there (other files are left alone)")


def _app_files(ctx: Context, records: list[AppRecord], layout: Layout, version: int) -> list[ExportFile]:
    spec = records[0].spec
    if spec.clustered:
        units = _cluster_units(ctx, records, layout, version)
    else:
        units = {service_unit(spec.name): _fork_unit(records[0], layout, version)}
    if spec.cron_restart:
        units.update(_cron_units(spec, _app_unit(spec), layout))
    files = [ExportFile(name, text) for name, text in units.items()]
    files += [ExportFile(f"{ENV_DIR}/{env_file_name(record)}", _env_text(ctx, record), 0o600) for record in records]
    if is_node(spec.interpreter):
        with open(NODE_PRELOAD, encoding="utf-8") as handle:
            files.append(ExportFile(PRELOAD_FILE, handle.read()))
    return files


def env_file_name(record: AppRecord) -> str:
    """Named after the unit that reads it (pmsd names a fork app's by id, which means nothing without pmsd)."""
    if record.instance is None:
        return f"{UNIT_PREFIX}{escape_name(record.name)}.env"
    return instance_env_file_name(record.name, record.instance)


def _app_unit(spec: AppSpec) -> str:
    """The unit that starts, stops and restarts the whole app."""
    return f"{UNIT_PREFIX}{escape_name(spec.name)}.target" if spec.clustered else service_unit(spec.name)


def _env_text(ctx: Context, record: AppRecord) -> str:
    """The environment pmsd runs the instance with, as it is: the one captured at `pmsd start`."""
    try:
        with open(ctx.registry.record_env_file(record), encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        ctx.warnings.append(f"app {record.name!r}: no environment file in pmsd's state, exported its definition's "
                            "env only")
        return render_env_file(record_environment({}, record))


# ------------------------------------------------------------------------------------------------- units


def _fork_unit(record: AppRecord, layout: Layout, version: int) -> str:
    inputs = UnitInputs(record.spec, f"{_PLACEHOLDER}/{env_file_name(record)}", system=not layout.user)
    text = _relocate(render_unit_file(inputs, version), layout)
    also = [cron_timer_unit(record.name)] if record.spec.cron_restart else []
    header = [f"pmsd app {record.name}, exported by `pmsd export`: runs without pmsd (see README.txt).",
              *_not_exported(record.spec, layout, os.getuid())]
    return _comments(header) + text + _install(layout.wanted_by, also)


def _cluster_units(ctx: Context, records: list[AppRecord], layout: Layout, version: int) -> dict[str, str]:
    """The template, its socket and holder (pmsd's own files), and the target that wants every instance."""
    spec = records[0].spec
    # Port discovery reports to pmsd, which is not there any more: the ports found so far are the socket's.
    inputs = dataclasses.replace(cluster.unit_inputs(ctx, spec), env_file=f"{_PLACEHOLDER}/x",
                                 discover_ports=False, system=not layout.user)
    rendered = render_cluster_units(inputs, version)
    files = {unit: _relocate(_strip_comments(text), layout) for unit, text in rendered.items()}
    target = _app_unit(spec)
    template = template_unit(spec.name)
    numbers = [record.instance or 0 for record in records]
    # PartOf=: stopping or restarting the target stops or restarts every instance (systemd.unit(5)).
    files[template] = (_comments(_template_header(spec, numbers, layout, bool(inputs.listen)))
                       + _add_to_unit_section(files[template], f"PartOf={target}") + _install(target))
    for unit in set(files) - {template}:
        files[unit] = _comments([f"pmsd cluster app {spec.name}, exported by `pmsd export`."]) + files[unit]
    files[target] = _target_text(spec, numbers, layout)
    return files


def _template_header(spec: AppSpec, numbers: list[int], layout: Layout, has_socket: bool) -> list[str]:
    systemctl = " ".join(layout.systemctl)
    notes = [*_not_exported(spec, layout, os.getuid()),
             "not exported: reload (pmsd replaces instances one at a time; restarting the target restarts all)"]
    if cluster.discovers_ports(spec) and not has_socket:
        notes.append("not exported: port discovery (no port was found or declared, so no shared socket)")
    return [f"pmsd cluster app {spec.name}, exported by `pmsd export`: the template of its instances",
            f"{instance_unit(spec.name, numbers[0])}..., each reading its own env file (see README.txt).",
            f"Enable them all with `{systemctl} enable --now {_app_unit(spec)}` (it Wants= each one), or one",
            f"by one: `{systemctl} enable --now {_brace_units(spec.name, numbers)}`.", *notes]


def _brace_units(name: str, numbers: list[int]) -> str:
    """The instances as a shell would spell them: pmsd-web@{0..3}.service when their numbers follow each other."""
    if len(numbers) > 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"{UNIT_PREFIX}{escape_name(name)}@{{{numbers[0]}..{numbers[-1]}}}.service"
    return " ".join(instance_unit(name, number) for number in numbers)


def _target_text(spec: AppSpec, numbers: list[int], layout: Layout) -> str:
    instance = f"{UNIT_PREFIX}{escape_name(spec.name)}@<n>.service"
    header = [f"pmsd cluster app {spec.name}, exported by `pmsd export`: its {len(numbers)} instance(s) as one unit.",
              "Start, stop, restart or enable this target to act on all of them. To add an instance <n>:",
              f"install env/{instance_env_file_name(spec.name, '<n>')} and enable {instance}",
              "(the template's WantedBy= adds it here)."]
    # Wants=, not Requires=: an instance that fails leaves the others running, as in PM2.
    wants = "".join(f"Wants={instance_unit(spec.name, number)}\n" for number in numbers)
    also = [cron_timer_unit(spec.name)] if spec.cron_restart else []
    return (_comments(header) + f"[Unit]\nDescription=pmsd app {literal(spec.name)}: all instances\n" + wants
            + _install(layout.wanted_by, also))


def _cron_units(spec: AppSpec, unit: str, layout: Layout) -> dict[str, str]:
    """cron_restart as pmsd makes it (pmsd.api.launch.ensure_cron), but restarting with systemctl: a stopped app
    is started, as PM2's cron does. `systemctl` is found in systemd's fixed search path (systemd.service(5),
    "Command lines"): /bin or /usr/bin, whichever the distribution uses."""
    header = _comments([f"cron_restart of pmsd app {spec.name}, exported by `pmsd export`: {spec.cron_restart}"])
    calendar = "".join(f"OnCalendar={expression}\n" for expression in on_calendar(spec.cron_restart or ""))
    accuracy = TIMER_ACCURACY_USEC // 1_000_000
    timer = (f"{header}[Unit]\nDescription=pmsd cron_restart of app {literal(spec.name)}: "
             f"{literal(spec.cron_restart)}\n\n[Timer]\n{calendar}AccuracySec={accuracy}s\n"
             + _install("timers.target"))
    command = " ".join(exec_word(word) for word in exec_argv([*layout.systemctl, "restart", unit]))
    service = (f"{header}[Unit]\nDescription=pmsd cron restart of app {literal(spec.name)}\n\n"
               f"[Service]\nType=oneshot\nExecStart={command}\n")
    return {cron_timer_unit(spec.name): timer, cron_service_unit(spec.name): service}


def _install(wanted_by: str, also: Sequence[str] = ()) -> str:
    # Also= splits its value with backslash escapes (config_parse_also() in src/shared/install.c), unlike
    # WantedBy=: the "\" of an escaped name is doubled, or `systemctl enable` looks for a unit without it.
    also_lines = "".join(f"Also={unit.replace(chr(92), chr(92) * 2)}\n" for unit in also)
    return f"\n[Install]\nWantedBy={wanted_by}\n{also_lines}"


def _relocate(text: str, layout: Layout) -> str:
    """Point EnvironmentFile= and a Node app's --require at the files' installed places."""
    lines = []
    # The path the settings table renders (its NODE_PRELOAD, which the unit tests pin), as ExecStart= spells it.
    rendered_preload = vars(settings)["NODE_PRELOAD"]
    preload = f" --require {exec_word(exec_argv([rendered_preload])[0])} "
    for line in text.splitlines(keepends=True):
        if line.startswith(f"EnvironmentFile={_PLACEHOLDER}/"):
            line = line.replace(_PLACEHOLDER, f"{layout.root}/{ENV_DIR}", 1)
        elif line.startswith("ExecStart="):
            line = line.replace(preload, f" --require {layout.root}/{PRELOAD_FILE} ", 1)
        lines.append(line)
    return "".join(lines)


def _strip_comments(text: str) -> str:
    """pmsd's own header comments of a unit describe what pmsd does with it: dropped, the export has its own."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def _add_to_unit_section(text: str, line: str) -> str:
    head, separator, rest = text.partition("\n\n[Service]\n")
    return f"{head}\n{line}{separator}{rest}"


def _comments(lines: Sequence[str]) -> str:
    return "".join(f"# {line}\n" for line in lines)


def _not_exported(spec: AppSpec, layout: Layout, caller_uid: int) -> list[str]:
    """The app's options that plain systemd cannot carry over, one comment line each."""
    notes = [f"not exported: {setting.key} ({GOD_ONLY[setting.key]})" for setting in SETTINGS
             if setting.by_god and getattr(spec, setting.key) != setting.default]
    files = [path for path in (stdout_file(spec), stderr_file(spec)) if path]
    if files and runs_as_another_user(spec.user, not layout.user, caller_uid):
        notes.append(f"note: systemd opens {files[0]} as root (pmsd opened it as {spec.user}): make sure "
                     f"{spec.user} cannot replace it with a link, or log to the journal")
    return notes


# ------------------------------------------------------------------------------------------------ README


def _enabled_units(spec: AppSpec) -> list[str]:
    return [_app_unit(spec), *([cron_timer_unit(spec.name)] if spec.cron_restart else [])]


def render_readme(layout: Layout, apps: list[list[AppRecord]], files: list[ExportFile]) -> str:
    systemctl = " ".join(layout.systemctl)
    units = [f.path for f in files if "/" not in f.path and f.path not in (PRELOAD_FILE, README)]
    # The timers too: `enable --now` starts the units named, and Also= only enables the timer for the next boot.
    enable = " ".join(shlex.quote(unit) for records in apps for unit in _enabled_units(records[0].spec))
    preload = any(f.path == PRELOAD_FILE for f in files)
    scope = "your user's systemd (user mode)" if layout.user else "the system's systemd (system mode)"
    text = [
        f"Plain systemd units for {scope}, exported by `pmsd export`. They run without pmsd.",
        "",
        "1. Take the apps out of pmsd first (`pmsd delete <app>`): pmsd's own units have the same names, and the",
        "   unit files it keeps in the runtime directory (/run) would take precedence over these.",
        "2. Install the files (env/ holds each app's environment: keep it 0700 and its files 0600):",
        f"     mkdir -p {layout.unit_dir} {layout.root_shell}",
        f"     cp {' '.join(shlex.quote(unit) for unit in units)} {layout.unit_dir}/",
        f"     cp -a {ENV_DIR}{' ' + PRELOAD_FILE if preload else ''} {layout.root_shell}/",
        "3. Enable and start the apps and their cron_restart timers:",
        f"     {systemctl} daemon-reload",
        f"     {systemctl} enable --now {enable}",
        "",
        "A cluster app is pmsd-<app>.target: it Wants= each instance, and stopping or restarting it stops or",
        "restarts them all. The env files hold the environment pmsd captured when each app was started (the",
        "shell's variables included): review them before installing on another host.",
        "What plain systemd cannot do (god's file watching, backoff, memory restarts) is listed in the",
        "`# not exported:` lines at the top of each unit.",
    ]
    if layout.user:
        text += ["User units start when you log in; to start them at boot: `loginctl enable-linger $USER`."]
    return "\n".join(text) + "\n"
