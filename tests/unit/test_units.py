from __future__ import annotations

import os
from dataclasses import replace

import pytest

import pmsd.definition.units
from pmsd.definition.settings import SETTINGS, SYSTEMD_FLOOR, Directive, Setting, parse_str
from pmsd.definition.units import assignments, render_unit_file, transient_properties
from pmsd.errors import UsageError
from pmsd.model.spec import AppSpec, UnitInputs
from tests.unit.helpers import GOLDEN_DIR, UPDATE_GOLDEN, make_spec

ENV_FILE = "/state/env/7.env"
CLUSTER_NODE_SPEC = make_spec(
    name="web", script="/srv/web/server.js", interpreter="/usr/bin/node", exec_path="/usr/bin/node",
    argv=("/usr/bin/node", "/srv/web/server.js"), cwd="/srv/web", exec_mode="cluster", instances=4,
    port="127.0.0.1:3000", wait_ready=True, listen_timeout=8000, kill_timeout=5000,
)

GOLDEN_SPECS: dict[str, tuple[AppSpec, bool]] = {
    # A .py app with every default.
    "minimal": (make_spec(), False),
    # Every option pmsd turns into a directive, with arguments that need quoting in ExecStart=.
    "every-option": (make_spec(
        name="api",
        script="/srv/api/server.py",
        cwd="/srv/api",
        interpreter_args=("-u", "-X", "dev"),
        args=("hello world", 'say "hi"', "it's", "$HOME", "100%", "back\\slash", "", "--flag=1", "é"),
        argv=("/usr/bin/python3", "-u", "-X", "dev", "/srv/api/server.py", "hello world", 'say "hi"', "it's",
              "$HOME", "100%", "back\\slash", "", "--flag=1", "é"),
        namespace="backend",
        env={"PORT": "3000", "SECRET": "never in the unit"},
        autorestart=False,
        restart_delay=250,
        max_restarts=3,
        min_uptime=2000,
        stop_exit_codes=(0, 3),
        kill_timeout=5000,
        time=True,
        out_file="/var/log/api/out.log",
        error_file="/var/log/api/error.log",
    ), False),
    # A name that must be escaped in the unit name (but not in Description= or SyslogIdentifier=), run directly.
    "escaped-name": (make_spec(
        name="my api/v2 日本",
        script="/opt/my tools/run",
        interpreter="none",
        exec_path="/opt/my tools/run",
        argv=("/opt/my tools/run", "--verbose"),
        args=("--verbose",),
        cwd="/opt/my tools",
    ), False),
    # System manager: User= and Group=.
    "system-user": (make_spec(name="web", user="www-data", group="www-data"), True),
    # stdout to a file: stderr must then be sent to the journal explicitly (it would follow stdout).
    "stdout-file": (make_spec(name="talker", out_file="/var/log/talker.log"), False),
    # PM2's disable_logs: both streams discarded.
    "disable-logs": (make_spec(name="quiet", disable_logs=True), False),
    # Exponential backoff (systemd's RestartSec= becomes the 15 s cap; god restarts earlier) and a hard
    # memory limit.
    "backoff-memory": (make_spec(name="backoff", exp_backoff_restart_delay=100, memory_max=512 * 1024**2,
                                 max_memory_restart=256 * 1024**2), False),
    # PM2's treekill: false: the stop signal goes to the main process only (KillMode=mixed).
    "no-treekill": (make_spec(name="spawner", treekill=False), False),
    # A Node cluster app with a shared port that says when it is ready (rendered as a template: test_unitfiles).
    "cluster-node": (CLUSTER_NODE_SPEC, False),
}


def test_goldens_cover_every_directive() -> None:
    covered = {a.directive.dbus_name for spec, system in GOLDEN_SPECS.values() for unit_type in ("service", "socket")
               for a in assignments(UnitInputs(spec, ENV_FILE, system), SYSTEMD_FLOOR, unit_type)}
    # Descriptors are only known at launch (pmsd opens the files): covered by the test below, not a golden.
    covered |= {a.directive.dbus_name for a in assignments(OTHER_USER_WITH_FILES, SYSTEMD_FLOOR)}
    missing = {d.dbus_name for s in SETTINGS for d in s.directives} - covered
    assert not missing, f"add an app to GOLDEN_SPECS that sets {sorted(missing)}"


OTHER_USER_WITH_FILES = UnitInputs(make_spec(name="web", user="www-data", out_file="/home/www/out.log",
                                             error_file="/home/www/err.log"), ENV_FILE, True,
                                   log_fds={"out": 11, "err": 12})


def test_log_files_opened_by_pmsd_go_to_systemd_as_descriptors() -> None:
    """An app run as another user: its files were opened with that user's rights, and systemd gets the
    descriptors, never the paths (it would open them as root)."""
    properties = {p.name: p for p in transient_properties(OTHER_USER_WITH_FILES, SYSTEMD_FLOOR)}
    assert (properties["StandardOutputFileDescriptor"].signature, properties["StandardOutputFileDescriptor"].value) \
        == ("h", 11)
    assert (properties["StandardErrorFileDescriptor"].signature, properties["StandardErrorFileDescriptor"].value) \
        == ("h", 12)
    assert not {"StandardOutputFileToAppend", "StandardErrorFileToAppend"} & set(properties)
    assert "/home/www" not in repr(properties)


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_unit_file_matches_golden(name: str) -> None:
    spec, system = GOLDEN_SPECS[name]
    rendered = render_unit_file(UnitInputs(spec, ENV_FILE, system), SYSTEMD_FLOOR)
    path = os.path.join(GOLDEN_DIR, f"{name}.service")
    if UPDATE_GOLDEN:
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(rendered)
    with open(path, encoding="utf-8", newline="") as handle:
        expected = handle.read()
    assert rendered == expected, f"{path} differs; regenerate with PMSD_UPDATE_GOLDEN=1 if the change is intended"


def test_unit_file_sections() -> None:
    text = render_unit_file(UnitInputs(make_spec(), ENV_FILE), SYSTEMD_FLOOR)
    unit, service = text.split("\n\n[Service]\n")
    assert unit.startswith("[Unit]\n")
    assert {line.split("=", 1)[0] for line in unit.splitlines()[1:]} == {
        "Description", "StartLimitBurst", "StartLimitIntervalSec"}
    assert "EnvironmentFile=/state/env/7.env" in service.splitlines()
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_env_values_never_reach_the_unit() -> None:
    spec = make_spec(env={"SECRET": "hunter2"})
    text = render_unit_file(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)
    properties = transient_properties(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)
    assert "hunter2" not in text
    assert "hunter2" not in repr(properties)


# ------------------------------------------------------------------------------------------ D-Bus


def _properties(spec: AppSpec, system: bool = False) -> dict[str, tuple[str, object]]:
    props = transient_properties(UnitInputs(spec, ENV_FILE, system), SYSTEMD_FLOOR)
    names = [p.name for p in props]
    assert len(names) == len(set(names))
    return {p.name: (p.signature, p.value) for p in props}


def test_transient_properties_use_dbus_names_and_units() -> None:
    spec = make_spec(restart_delay=250, max_restarts=3, min_uptime=2000, stop_exit_codes=(3, 0),
                     kill_timeout=5000, autorestart=False)
    props = _properties(spec)
    assert props["RestartUSec"] == ("t", 250_000)
    assert props["TimeoutStopUSec"] == ("t", 5_000_000)
    assert props["RestartPreventExitStatus"] == ("(aiai)", ([3, 0], []))
    assert props["Restart"] == ("s", "no")
    assert props["Type"] == ("s", "exec")
    assert props["KillSignal"] == ("i", 2)
    assert props["SendSIGKILL"] == ("b", True)
    assert props["EnvironmentFiles"] == ("a(sb)", [(ENV_FILE, False)])
    assert props["ExecStart"] == ("a(sasb)", [("/usr/bin/python3", ["/usr/bin/python3", "/srv/app/main.py"], False)])
    assert props["WorkingDirectory"] == ("s", "/srv/app")
    assert props["Description"] == ("s", "pmsd app main")
    assert props["SyslogIdentifier"] == ("s", "main")
    for unit_file_name in ("RestartSec", "TimeoutStopSec", "StartLimitIntervalSec", "EnvironmentFile"):
        assert unit_file_name not in props


@pytest.mark.parametrize(("max_restarts", "min_uptime", "restart_delay"), [
    (3, 2000, 250), (16, 1000, 0), (0, 1000, 100), (1, 500, 0), (10, 60_000, 5000),
])
def test_start_limit_interval_covers_burst_quick_runs(max_restarts: int, min_uptime: int, restart_delay: int) -> None:
    props = _properties(make_spec(max_restarts=max_restarts, min_uptime=min_uptime, restart_delay=restart_delay))
    signature, burst = props["StartLimitBurst"]
    assert signature == "u"
    assert isinstance(burst, int) and burst >= 1  # a burst of 0 would switch the limit off
    assert burst in (max_restarts, max_restarts + 1)
    assert props["StartLimitIntervalUSec"] == ("t", burst * (min_uptime + restart_delay) * 1000)


def test_min_uptime_zero_disables_the_start_limit() -> None:
    assert _properties(make_spec(min_uptime=0, restart_delay=0))["StartLimitIntervalUSec"] == ("t", 0)


def test_autorestart_true_restarts_always_and_no_stop_codes_leaves_default() -> None:
    props = _properties(make_spec())
    assert props["Restart"] == ("s", "always")
    assert props["RestartUSec"] == ("t", 0)
    assert "RestartPreventExitStatus" not in props


def test_transient_properties_and_unit_file_describe_the_same_directives() -> None:
    spec = make_spec(stop_exit_codes=(0,))
    inputs = UnitInputs(spec, ENV_FILE)
    rendered = {line.split("=", 1)[0] for line in render_unit_file(inputs, SYSTEMD_FLOOR).splitlines()
                if "=" in line}
    assert rendered == {a.directive.name for a in assignments(inputs, SYSTEMD_FLOOR)}
    assert len(transient_properties(inputs, SYSTEMD_FLOOR)) == len(rendered)


@pytest.mark.parametrize(("usec_field", "ms", "text"), [
    ("restart_delay", 0, "RestartSec=0s"), ("restart_delay", 250, "RestartSec=250ms"),
    ("restart_delay", 2000, "RestartSec=2s"), ("restart_delay", 1500, "RestartSec=1500ms"),
    ("kill_timeout", 1600, "TimeoutStopSec=1600ms"), ("kill_timeout", 60_000, "TimeoutStopSec=60s"),
])
def test_durations_in_the_unit_file(usec_field: str, ms: int, text: str) -> None:
    spec = make_spec(**{usec_field: ms})
    assert text in render_unit_file(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR).splitlines()


# ------------------------------------------------------------------------------------------ log files


def _log_directives(**spec: object) -> dict[str, str]:
    text = render_unit_file(UnitInputs(make_spec(**spec), ENV_FILE), SYSTEMD_FLOOR)
    return {key: value for key, _, value in (line.partition("=") for line in text.splitlines())
            if key in ("StandardOutput", "StandardError")}


@pytest.mark.parametrize(("options", "expected"), [
    ({}, {}),
    ({"out_file": "/l/out"}, {"StandardOutput": "append:/l/out", "StandardError": "journal"}),
    ({"error_file": "/l/err"}, {"StandardError": "append:/l/err"}),
    ({"out_file": "/l/out", "error_file": "/l/err"},
     {"StandardOutput": "append:/l/out", "StandardError": "append:/l/err"}),
    ({"log_file": "/l/all"}, {"StandardOutput": "append:/l/all", "StandardError": "append:/l/all"}),
    ({"log_file": "/l/all", "out_file": "/l/out"}, {"StandardOutput": "append:/l/out", "StandardError": "journal"}),
    ({"disable_logs": True, "out_file": "/l/out"}, {"StandardOutput": "null", "StandardError": "null"}),
])
def test_log_file_options(options: dict[str, object], expected: dict[str, str]) -> None:
    assert _log_directives(**options) == expected


def test_log_files_travel_as_file_to_append_properties() -> None:
    props = _properties(make_spec(out_file="/l/out", error_file="/l/err"))
    assert props["StandardOutputFileToAppend"] == ("s", "/l/out")
    assert props["StandardErrorFileToAppend"] == ("s", "/l/err")
    assert "StandardOutput" not in props and "StandardError" not in props


# ------------------------------------------------------------------------------------------ scope and version


@pytest.mark.parametrize("option", ["user", "group"])
def test_system_only_directives_are_refused_in_user_mode(option: str) -> None:
    inputs = UnitInputs(make_spec(**{option: "www-data"}), ENV_FILE)
    with pytest.raises(UsageError) as caught:
        transient_properties(inputs, SYSTEMD_FLOOR)
    assert repr(option) in caught.value.message and "system manager" in caught.value.message
    with pytest.raises(UsageError):
        render_unit_file(inputs, SYSTEMD_FLOOR)


def test_system_only_directives_work_for_the_system_manager() -> None:
    props = _properties(make_spec(user="www-data", group="staff"), system=True)
    assert props["User"] == ("s", "www-data")
    assert props["Group"] == ("s", "staff")


def test_journal_rate_limit_is_raised_for_system_units_only() -> None:
    # User units are rate-limited as their manager's user@UID.service: the per-unit setting would be a no-op.
    system = _properties(make_spec(), system=True)
    assert system["LogRateLimitIntervalUSec"][0] == "t" and system["LogRateLimitBurst"][0] == "u"
    burst, interval = system["LogRateLimitBurst"][1], system["LogRateLimitIntervalUSec"][1]
    assert isinstance(burst, int) and isinstance(interval, int)
    assert burst / interval > 10_000 / 30_000_000  # more generous than journald's default 10,000 per 30 s
    user = _properties(make_spec(), system=False)
    assert "LogRateLimitBurst" not in user and "LogRateLimitIntervalUSec" not in user


def test_system_only_directives_are_skipped_when_unset() -> None:
    props = _properties(make_spec(), system=False)
    assert "User" not in props and "Group" not in props


def _with_future_directive(monkeypatch: pytest.MonkeyPatch, min_version: int) -> None:
    future = Setting("future_option", parse_str, None, "An option from a newer systemd.",
                     (Directive("FutureThing", "FutureThing", "s", lambda _inputs: "on", str,
                                min_version=min_version),))
    monkeypatch.setattr(pmsd.definition.units, "SETTINGS", (*SETTINGS, future))


def test_directive_newer_than_the_manager_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_future_directive(monkeypatch, 999)
    inputs = UnitInputs(make_spec(name="api"), ENV_FILE)
    with pytest.raises(UsageError) as caught:
        transient_properties(inputs, SYSTEMD_FLOOR)
    message = caught.value.message
    assert "'api'" in message and "future_option" in message and "999" in message and str(SYSTEMD_FLOOR) in message


def test_directive_at_the_managers_version_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_future_directive(monkeypatch, 999)
    inputs = UnitInputs(make_spec(), ENV_FILE)
    assert "FutureThing=on" in render_unit_file(inputs, 999).splitlines()
    assert _properties_at(inputs, 1000)["FutureThing"] == ("s", "on")


def _properties_at(inputs: UnitInputs, version: int) -> dict[str, tuple[str, object]]:
    return {p.name: (p.signature, p.value) for p in transient_properties(inputs, version)}


# ------------------------------------------------------------------------------------------ known bugs


def test_argument_with_newline_keeps_exec_start_on_one_line() -> None:
    spec = make_spec(args=("line1\nline2",), argv=("/usr/bin/python3", "/srv/app/main.py", "line1\nline2"))
    text = render_unit_file(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_line.endswith('"line1\\nline2"')


def test_percent_in_name_is_escaped_in_the_unit_file() -> None:
    spec = make_spec(name="50%off")
    text = render_unit_file(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)
    assert "Description=pmsd app 50%%off" in text.splitlines()
    assert "SyslogIdentifier=50%%off" in text.splitlines()


def test_replace_keeps_spec_frozen() -> None:
    spec = make_spec()
    assert replace(spec, name="x").name == "x" and spec.name == "main"


def test_treekill_false_is_kill_mode_mixed_and_the_default_leaves_systemds_control_group() -> None:
    def kill_mode(spec: AppSpec) -> list[object]:
        return [p.value for p in transient_properties(UnitInputs(spec, ENV_FILE), SYSTEMD_FLOOR)
                if p.name == "KillMode"]
    assert kill_mode(make_spec()) == []  # systemd's default: KillMode=control-group
    assert kill_mode(make_spec(treekill=False)) == ["mixed"]
    assert "KillMode=mixed\n" in render_unit_file(UnitInputs(make_spec(treekill=False), ENV_FILE), SYSTEMD_FLOOR)
    assert "KillMode" not in render_unit_file(UnitInputs(make_spec(), ENV_FILE), SYSTEMD_FLOOR)
