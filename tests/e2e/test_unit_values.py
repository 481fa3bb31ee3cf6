"""Values a user writes reach a real systemd exactly as written (issue 11), and the model of systemd's parsers that
tests/unit/test_unit_values.py relies on agrees with the real one.

Two halves:

- The model against systemd: raw unit files (ExecStart= lines, plain values, user names, continuations) are
  loaded by the user manager and what it read (over D-Bus) is compared with what the model says it reads.
- pmsd against systemd: hostile-but-accepted definitions are built by pmsd; a fork app's transient properties
  are started with StartTransientUnit and a cluster app's template, rendered by pmsd, is written into the
  runtime unit directory and one instance started. What the process got (/proc: argv, cwd, environment; its
  output files) and what systemd loaded (D-Bus) are compared with the definition.

Units here are named uvtest-<token>-...: never pmsd-..., so no pmsd (or god) of another test takes them for its
own. Every unit is stopped, reset and its file removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pystemd.dbuslib import apply_signature  # type: ignore[import-not-found, unused-ignore]

from pmsd.definition.build import build_spec
from pmsd.definition.unitfiles import LOG_DROPIN, render_cluster_units, render_log_dropin
from pmsd.definition.units import transient_properties
from pmsd.errors import PmsdError, UsageError
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec, Source, UnitInputs
from pmsd.state.registry import Registry
from pmsd.systemd.bus import Manager
from pmsd.systemd.names import instance_slice, template_unit
from pmsd.systemd.paths import runtime_unit_dir
from pmsd.systemd.properties import MANAGER, MANAGER_PATH
from pmsd.systemd.states import DOWN_STATES, ActiveState
from tests.unit.helpers import SYSTEM_PATH
from tests.unit.test_unit_values import (
    INJECTION,
    Command,
    Refused,
    glob_literal,
    parse_exec,
    path_simplify,
    plain_path,
    printf,
    read_unit,
    user_group,
    valid_user_group_name,
)

pytestmark = pytest.mark.e2e

TOKEN = uuid.uuid4().hex[:6]
UNIT = b"org.freedesktop.systemd1.Unit"
SERVICE = b"org.freedesktop.systemd1.Service"
EXAMPLES = int(os.environ.get("PMSD_E2E_HYPOTHESIS_EXAMPLES", "30"))
APP = ("import sys, time\nprint('out-marker', flush=True)\nprint('err-marker', file=sys.stderr, flush=True)\n"
       "time.sleep(60)\n")
SH_APP = "#!/bin/sh\necho out-marker\necho err-marker >&2\nsleep 60 & wait\n"


# ------------------------------------------------------------------------------------------ the manager


@dataclass
class Systemd:
    """The user manager, and every unit and file this module made (removed at the end)."""

    manager: Manager = field(repr=False)
    unit_dir: str
    units: list[str] = field(default_factory=list, repr=False)
    files: list[str] = field(default_factory=list, repr=False)
    counter: int = 0

    def name(self, kind: str, suffix: str = ".service") -> str:
        self.counter += 1
        return f"uvtest-{TOKEN}-{kind}{self.counter}{suffix}"

    def write(self, unit: str, text: str | bytes) -> None:
        path = os.path.join(self.unit_dir, unit)
        if os.path.dirname(unit) and not os.path.isdir(os.path.dirname(path)):  # a drop-in's <unit>.d/
            os.mkdir(os.path.dirname(path))
            self.files.append(os.path.dirname(path))  # removed after the file in it (reversed below)
        self.files.append(path)
        with open(path, "wb") as handle:
            handle.write(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)

    def load(self, unit: str) -> bytes:
        """LoadUnit: a unit file never loaded before is found without a daemon-reload."""
        self.units.append(unit)
        # Manager has no LoadUnit; its private D-Bus call is used here, in a test only.
        path: bytes = self.manager._call(MANAGER_PATH, MANAGER, b"LoadUnit", apply_signature(b"s", [unit.encode()]),
                                         unit)
        return path

    def get(self, path: bytes, interface: bytes, name: str, signature: str) -> Any:
        return _text(self.manager._get(path, interface, name, signature, ""))

    def loaded(self, text: str, kind: str = "raw") -> tuple[str, bytes]:
        unit = self.name(kind)
        self.write(unit, text)
        return unit, self.load(unit)

    def exec_start(self, path: bytes) -> list[tuple[str, list[str]]]:
        return [(row[0], list(row[1])) for row in self.get(path, SERVICE, "ExecStart", "a(sasbttttuii)")]

    def main_pid(self, unit: str, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.manager.service_state(unit)
            if state is not None and state.main_pid and state.active_state == ActiveState.ACTIVE:
                return state.main_pid  # Type=exec: active once execve() succeeded
            if state is not None and state.active_state == ActiveState.FAILED:
                break
            time.sleep(0.02)
        raise AssertionError(f"{unit} did not start: {self.manager.service_state(unit)}")

    def cleanup(self) -> None:
        for unit in self.units:
            with contextlib.suppress(PmsdError):
                self.manager.stop(unit)
        for unit in self.units:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                state = self.manager.service_state(unit)
                if state is None or state.active_state in DOWN_STATES:
                    break
                time.sleep(0.02)
            self.manager.reset_failed(unit)
        # A template's instances run in a slice systemd made for them (app-<prefix>.slice), which stays active
        # once they have stopped: stop it too, or every example leaves one behind (~30 per run).
        for prefix in sorted({unit.partition("@")[0] for unit in self.units if "@" in unit}):
            with contextlib.suppress(PmsdError):  # the whole template name is the prefix here, the app's name empty
                self.manager.stop(instance_slice("", user=True, unit_prefix=prefix))
        for path in reversed(self.files):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(path) if os.path.isdir(path) else os.unlink(path)


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple)):
        return type(value)(_text(item) for item in value)
    return value


@pytest.fixture(scope="module")
def systemd(user_manager: dict[str, str]) -> Iterator[Systemd]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in user_manager.items():
            patch.setenv(key, value)
        manager = Manager.connect(user=True)
        found = Systemd(manager, runtime_unit_dir(True, os.environ))
        os.makedirs(found.unit_dir, exist_ok=True)
        try:
            yield found
        finally:
            found.cleanup()
            manager.close()


def _load_state(systemd: Systemd, path: bytes) -> str:
    return str(systemd.get(path, UNIT, "LoadState", "s"))


# ------------------------------------------------------------------------------------------ the model vs systemd

WORDS = ["a", "é", '"a b"', "'c d'", '"x\'y"', "'x\"y'", "\\x41", "\\n", "\\s", "\\t", "\\d", "\\ ", "\\\\", '\\"',
         '";"', ";", "\\;", "%%", "%%i", "$$", "$HOME", '""', "a\"b c\"d", '"\\101"', '"\\u00e9"', "\\xc3\\xa9",
         '"open', "'", "\\", "-x", "@y", "#z"]
EXEC_LINES = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(
    lambda words: "/bin/echo " + " ".join(words))
PLAIN = st.lists(st.sampled_from(["a", " ", "  ", "é", "日本", "%%", "\\", "\\\\", "#", ";", '"', "'", "$x", "[x]",
                                  "*", "?", ":", "=", "~", "-", "@", "+", "!", "x y"]),
                 min_size=1, max_size=6).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=EXEC_LINES)
def test_model_reads_exec_start_as_systemd_does(systemd: Systemd, line: str) -> None:
    text = f"[Service]\nExecStart={line}\n"
    _, path = systemd.loaded(text)
    loaded = _load_state(systemd, path) == "loaded" and systemd.exec_start(path)
    try:
        (entry,) = read_unit(text)  # a trailing backslash continues the line: the model reads that too
        command = parse_exec(entry.value)
    except Refused as refusal:
        if "invalid" in str(refusal) or "bad executable" in str(refusal):
            assert not loaded, (line, loaded)  # systemd refuses the line too
        return
    assert loaded == [(command.path, command.argv)], line


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=PLAIN)
def test_model_reads_plain_values_as_systemd_does(systemd: Systemd, value: str) -> None:
    """Each directive last in its own unit, so that a trailing backslash continues into nothing."""
    for section, key, interface, prefix in (("Unit", "Description", UNIT, ""), ("Service", "SyslogIdentifier",
                                            SERVICE, ""), ("Service", "WorkingDirectory", SERVICE, "/tmp/"),
                                            ("Service", "EnvironmentFile", SERVICE, "/tmp/")):
        text = f"[Service]\nExecStart=/bin/true\n[{section}]\n{key}={prefix}{value}\n"
        unit, path = systemd.loaded(text)
        (entry,) = [entry for entry in read_unit(text) if entry.key == key]
        if key == "EnvironmentFile":
            simplified = path_simplify(printf(entry.value))  # path_simplify_and_warn() simplifies in place
            assert systemd.get(path, SERVICE, "EnvironmentFiles", "a(sb)") == [(simplified, False)], text
        elif key == "WorkingDirectory":
            try:
                directory = plain_path(entry.value)
            except Refused:
                continue
            assert systemd.get(path, SERVICE, "WorkingDirectory", "s") == directory, text
        else:
            expected = printf(entry.value) or (unit if key == "Description" else "")  # empty: the unit's name
            assert systemd.get(path, interface, key, "s") == expected, text


def test_model_reads_continuations_and_line_ends_as_systemd_does(systemd: Systemd) -> None:
    text = ("# c\n[Unit]\nDescription=a \\\n# skipped\n  b  \n;x\n[Service]\nUser=u\\\\\nGroup=g\r\n"
            "SyslogIdentifier = y\0WorkingDirectory=/tmp\nExecStart=/bin/true\n")
    _, path = systemd.loaded(text)
    model = {entry.key: entry.value for entry in read_unit(text)}
    assert systemd.get(path, UNIT, "Description", "s") == model["Description"] == "a    b"
    assert systemd.get(path, SERVICE, "User", "s") == model["User"] == "u\\\\"
    assert systemd.get(path, SERVICE, "Group", "s") == model["Group"] == "g"
    assert systemd.get(path, SERVICE, "SyslogIdentifier", "s") == model["SyslogIdentifier"] == "y"
    assert systemd.get(path, SERVICE, "WorkingDirectory", "s") == model["WorkingDirectory"] == "/tmp"


@pytest.mark.parametrize("name", ["0", "1000", "65535", "4294967294", "4294967295", "007", "-1", "-", "a b", "a:b",
                                  "a/b", ".", "..", "+1", "日本", "100%%", "x\\y", "-a", "a-"])
def test_model_takes_the_user_names_systemd_takes(systemd: Systemd, name: str) -> None:
    _, path = systemd.loaded(f"[Service]\nUser={name}\nExecStart=/bin/true\n")
    try:
        expected: str | None = user_group(name)
    except Refused:
        expected = None
    if expected is None:
        assert _load_state(systemd, path) != "loaded", name
    else:
        assert _load_state(systemd, path) == "loaded" and systemd.get(path, SERVICE, "User", "s") == expected


def test_issue_11_line_is_two_directives_for_systemd_and_for_the_model(systemd: Systemd, tmp_path: Path) -> None:
    """What the old rendering wrote (User= with the value as it was): systemd reads an ExecStartPre= running
    as root ("+"), and so does the model. pmsd now refuses the definition. Loaded only, never started."""
    text = f"[Service]\nUser={INJECTION}\nExecStart=/bin/true\n"
    _, path = systemd.loaded(text)
    pre = [(row[0], list(row[1])) for row in systemd.get(path, SERVICE, "ExecStartPre", "a(sasbttttuii)")]
    assert pre == [("/bin/sh", ["/bin/sh", "-c", "id > /tmp/owned"])]
    assert [entry.key for entry in read_unit(text)] == ["User", "ExecStartPre", "ExecStart"]
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o755)
    with pytest.raises(UsageError, match="key 'user'"):
        build_spec({"script": "tool", "user": INJECTION, "instances": 2}, Source("e.json", str(tmp_path)), None,
                   SYSTEM_PATH, [])


# ------------------------------------------------------------------------------------------ pmsd vs systemd

NAMES = st.lists(st.sampled_from(["a", "é", "日本", " ", "%", "%i", "$", "${X}", "'", '"', "\\", "*", "?", "[x]",
                                  "-", "@", "+", "!", ":", "~", ";", "#", "="]), min_size=1, max_size=5).map("".join)


@dataclass(frozen=True)
class Definition:
    name: str
    script: str
    args: list[str]
    cwd: str
    out_file: str
    error_file: str
    direct: bool  # the script is the program (interpreter "none"): its hostile path is ExecStart='s program


DEFINITIONS = st.builds(Definition, name=NAMES, script=NAMES.map(lambda s: s + ".py"),
                        args=st.lists(NAMES | st.sampled_from(["", "\n", "\t", "$HOME", "a\\x41"]), max_size=4),
                        cwd=NAMES, out_file=NAMES, error_file=NAMES, direct=st.booleans())


def _build(definition: Definition, base: str) -> AppSpec | None:
    """The definition with its files made; None when pmsd refuses it (a few hostile names are, rightly)."""
    directory = os.path.normpath(os.path.join(base, definition.cwd))
    if not directory.startswith(base + os.sep):  # files are made inside base only
        return None
    try:
        os.makedirs(directory, exist_ok=True)
        Path(directory, definition.script).write_text(SH_APP if definition.direct else APP)
        os.chmod(os.path.join(directory, definition.script), 0o755)
    except (OSError, UnicodeEncodeError):
        return None
    raw = {"name": f"{definition.name}-{TOKEN}", "script": definition.script,
           "interpreter": "none" if definition.direct else "python3",
           "args": definition.args, "cwd": definition.cwd, "out_file": definition.out_file + ".out",
           "error_file": definition.error_file + ".err"}
    try:
        return build_spec(raw, Source("e.json", base), None, SYSTEM_PATH, [])
    except UsageError:
        return None


def _state_dir(base: str) -> str:
    return os.path.join(base, "st[a]te*? %h $x")  # glob characters, a specifier and a "$" in pmsd's own paths


def _write_env(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Path(path).write_text('FROM_ENV_FILE="it $arrived"\n')


def _command_line(systemd: Systemd, unit: str) -> tuple[int, list[bytes]]:
    """The unit's main process and its argv, once the kernel has set it up. Type=exec reports the unit active
    when systemd's close-on-exec pipe closes, which execve() does before the new image's argument pages are
    in place: /proc/PID/cmdline can still read empty for a moment (seen on a booted Debian 12)."""
    deadline = time.monotonic() + 10
    while True:
        pid = systemd.main_pid(unit)
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        except FileNotFoundError:
            words = []
        if words or time.monotonic() > deadline:
            return pid, words
        time.sleep(0.01)


def _assert_process_matches(systemd: Systemd, unit: str, path: bytes, spec: AppSpec) -> None:
    pid, cmdline = _command_line(systemd, unit)
    # A "#!" script runs as its interpreter, the path systemd executed, then argv[1:] (binfmt_script).
    expected = ["/bin/sh", spec.exec_path, *spec.argv[1:]] if spec.interpreter == "none" else list(spec.argv)
    assert [word.decode("utf-8", "surrogateescape") for word in cmdline] == expected
    assert os.readlink(f"/proc/{pid}/cwd") == spec.cwd
    assert b"FROM_ENV_FILE=it $arrived" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert systemd.get(path, SERVICE, "WorkingDirectory", "s") == spec.cwd
    assert systemd.get(path, SERVICE, "SyslogIdentifier", "s") == spec.name
    ((exec_path, argv),) = systemd.exec_start(path)
    assert exec_path == spec.exec_path and Command(exec_path, argv, frozenset()).executed_argv() == list(spec.argv)
    for file, marker in ((spec.out_file, "out-marker"), (spec.error_file, "err-marker")):
        deadline = time.monotonic() + 10
        while not (os.path.exists(str(file)) and marker in Path(str(file)).read_text()):
            assert time.monotonic() < deadline, f"{marker} never reached {file}"
            time.sleep(0.02)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definition=DEFINITIONS)
def test_fork_app_transient_unit_holds_the_values_as_written(systemd: Systemd, definition: Definition) -> None:
    with tempfile.TemporaryDirectory(prefix="pmsd-uv-e2e-") as base:
        spec = _build(definition, base)
        if spec is None:
            return
        env_path = os.path.join(_state_dir(base), "env", "7.env")
        _write_env(env_path)
        unit = systemd.name("fork")
        systemd.units.append(unit)
        systemd.manager.start_transient(unit, transient_properties(UnitInputs(spec, env_path),
                                                                   systemd.manager.version))
        path = systemd.load(unit)
        assert systemd.get(path, UNIT, "Description", "s") == f"pmsd app {spec.name}"
        (pattern,) = systemd.get(path, SERVICE, "EnvironmentFiles", "a(sb)")
        assert glob_literal(pattern[0]) == env_path  # D-Bus values take no specifiers; the glob is all
        _assert_process_matches(systemd, unit, path, spec)
        systemd.manager.stop(unit)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(definition=DEFINITIONS)
def test_cluster_template_rendered_by_pmsd_holds_the_values_as_written(systemd: Systemd,
                                                                     definition: Definition) -> None:
    with tempfile.TemporaryDirectory(prefix="pmsd-uv-e2e-") as base:
        spec = _build(definition, base)
        if spec is None:
            return
        spec = replace(spec, exec_mode="cluster", instances=2)
        registry = Registry(_state_dir(base))
        files = render_cluster_units(UnitInputs(spec, registry.instance_env_file(spec.name, "%i")),
                                     systemd.manager.version)
        _write_env(registry.instance_env_file(spec.name, 1))
        template = systemd.name("cluster", "@.service")  # pmsd's text, a name of this test's own
        systemd.write(template, files[template_unit(spec.name)])
        unit = template.replace("@", "@1")
        # Where instance 1 logs (PM2's -<pm_id> files) is its own drop-in's (pmsd.api.cluster).
        instance_spec = AppRecord(9, spec, 0, instance=1).log_spec
        systemd.write(f"{unit}.d/{LOG_DROPIN}", render_log_dropin(UnitInputs(
            instance_spec, registry.instance_env_file(spec.name, 1)), systemd.manager.version))
        path = systemd.load(unit)
        assert systemd.get(path, UNIT, "Description", "s") == f"pmsd app {spec.name} (instance 1)"
        systemd.manager.start_unit(unit)
        _assert_process_matches(systemd, unit, path, instance_spec)
        systemd.manager.stop(unit)


@pytest.mark.parametrize("user", ["root", "0", "a b", "+1", "100%", "日本"])
def test_user_and_group_reach_the_loaded_unit_as_written(systemd: Systemd, tmp_path: Path, user: str) -> None:
    """User=/Group= only mean something to the system manager; the user manager still parses them, so a
    template rendered for the system manager is loaded (never started) to read them back."""
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o755)
    spec = build_spec({"name": f"u-{TOKEN}", "script": "tool", "user": user, "group": user, "instances": 2},
                      Source("e.json", str(tmp_path)), None, SYSTEM_PATH, [])
    files = render_cluster_units(UnitInputs(spec, "/var/lib/pmsd/env/x@%i.env", system=True),
                                 systemd.manager.version)
    template = systemd.name("user", "@.service")
    systemd.write(template, files[template_unit(spec.name)])
    path = systemd.load(template.replace("@", "@1"))
    assert valid_user_group_name(user)
    assert systemd.get(path, SERVICE, "User", "s") == user and systemd.get(path, SERVICE, "Group", "s") == user
