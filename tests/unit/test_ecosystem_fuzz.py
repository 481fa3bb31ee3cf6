"""Hostile ecosystem files (issue 19), without systemd: JSON, YAML, TOML and .config.js files of any content, and
apps of any shape in them (values of the wrong type, huge numbers, NUL bytes, newlines, "²", control characters,
long strings, nested garbage, unknown keys, odd env, cron strings, sizes and paths).

The property: loading the file, naming its apps (as targets do) and building every app either succeeds, and then
every value reaches the unit text and the transient properties in a form systemd reads back as meant (the model
of tests/unit/test_unit_values.py), the transient properties fit their D-Bus signatures, and the app can be
stored (registry, environment file) and read back; or it raises a pmsd error whose message names the file (or
the app). Never another exception, never a hang. `PMSD_FUZZ_EXAMPLES=20000` runs more cases.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmsd.api.targets import ecosystem_names, read_stdin_apps
from pmsd.definition.build import build_spec, definition_of
from pmsd.definition.ecosystem import load_apps
from pmsd.definition.environment import record_environment, runs_as_another_user
from pmsd.definition.parsers import parse_env
from pmsd.definition.pm2dump import CARRIED_KEYS, LOG_PATH_KEYS, RENAMED_KEYS, load_pm2_dump
from pmsd.definition.settings import ALIASES, NO_EFFECT, SETTINGS, SYSTEMD_FLOOR
from pmsd.definition.units import check_log_files, check_scope, transient_properties
from pmsd.errors import PmsdError, UsageError
from pmsd.linux.asuser import identity_of
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec, Source, UnitInputs
from pmsd.state.envfiles import read_env_file, write_env_file
from pmsd.state.registry import Registry
from tests.unit.helpers import SYSTEM_PATH, fuzz_examples, needs_node, time_limit, value_fits
from tests.unit.test_unit_values import check_everything_reads_back

# ------------------------------------------------------------------------------------------ what is fed

# Text that has broken parsers before, or could: digits Python reads and JavaScript does not ("²", "٣"), numbers
# too long for int(), unit-file syntax, specifiers, globs, control characters, lone surrogates, paths.
SPECIAL_TEXT = [
    "", " ", "²", "٣", "¹²", "9" * 5000, "-1", "0", "-0", "+1", "1e400", "NaN", "Infinity", "0x10", "1_000",
    "\0", "a\0b", "\n", "a\nExecStartPre=/bin/sh", "\r", "\t", "\x1b[2J", "\x7f", "\x85", "\u2028", "\ufeff",
    "\ud800", "\udcff", "%n", "%%", "$HOME", "${X}", "$$", "\\", "a\\", "'", '"', "`", "*", "?[", "~", "~root",
    "~nobody/x", "/", "//", "/..", "../..", ".", "x" * 300, "é" * 3000, "日本 🚀", "true", "false", "null",
    "NULL", "/dev/null", "max", "-max", "cluster", "fork_mode", "none", "node", "bash", "@daily", "@reboot",
    "* * * * *", "*/0 * * * *", "0 0 31 2 *", "60 * * * *", "1-100/3 * * * *", "0 0 L * *", "5 4 * * SUN-SAT",
    "0 0 1 1 * 2099", "²/2 * * * *", "150M", "1.5G", "0.5K", "9" * 400 + "G", "١٠M", "300", "2s", "1m", "1h",
    "1.5", ".5", "99999999999999999999ms", "3000", "65536", "127.0.0.1:3000", "[::1]:0", "[fe80::1%eth0]:80",
    "host:80", ":80", "1.2.3.4:²", "PORT", "NODE_APP_INSTANCE", "A-B", "0,3,9", "1,,2", "255,256", "json", "raw",
]
HOSTILE_TEXT = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(max_size=12),
    st.lists(st.sampled_from(SPECIAL_TEXT) | st.text(max_size=3), min_size=2, max_size=4).map("".join),
)
NUMBERS = st.one_of(
    st.sampled_from([2**31, 2**32, 2**32 - 1, 2**63, 2**64, -(2**63) - 1, 10**21, 10**309, 10**4000, 1e308, 1e-7,
                     -0.0, math.nan, math.inf, -math.inf]),
    st.integers(),
    st.floats(),
)
LEAF = st.one_of(st.none(), st.booleans(), NUMBERS, HOSTILE_TEXT)
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(HOSTILE_TEXT, inner, max_size=4), max_leaves=10)

# Values a setting takes, so that most examples get past the first key and reach the unit text.
PLAUSIBLE: dict[str, list[object]] = {
    "name": ["api", "a b", "日本", "x" * 250, "api@1", "-x", "."], "script": ["tool", "main.py", "./tool", "ls -la"],
    "cwd": [".", "sub", "~", "/tmp"], "args": [["--port", "3000"], "-v --x='a b'", "'unclosed"],
    "interpreter": ["none", "sh", "python3", "/bin/sh"], "interpreter_args": ["-u", ["-x"]],
    "instances": [2, "max", 0, -1, "3", 1025], "exec_mode": ["cluster", "fork"], "port": [3000, "0.0.0.0:80"],
    "env": [{"PORT": 3000, "A": None, "B": [1, {"c": 1.5}], "C": 1e21, "D": True}, {"X": "\u2028"}],
    "env_production": [{"NODE_ENV": "production", "PORT": "x"}], "user": ["nobody", "0", "65534"],
    "group": ["nogroup", "0"], "out_file": ["out.log", "logs/out.log", "NULL"], "error_file": ["/dev/null"],
    "log_file": [True, "all.log"], "cron_restart": ["@daily", "*/5 * * * *"], "watch": [True, ["src", "lib"]],
    "ignore_watch": ["node_modules", ["*.log"]], "max_memory_restart": ["150M", 1024], "memory_max": ["1G"],
    "kill_timeout": [1600, "2s"], "restart_delay": [0, "1m"], "min_uptime": ["1h"], "max_restarts": [0, 16],
    "stop_exit_codes": [[0, 3], "0,255"], "filter_env": [True, ["SECRET"], "A,B"], "namespace": ["prod"],
    "wait_ready": [True], "listen_timeout": [3000], "increment_var": ["PORT"], "instance_var": ["INSTANCE_ID"],
    "log_date_format": ["YYYY-MM-DD HH:mm Z"], "log_max_size": ["10M"], "log_rotate_interval": ["24h"],
}
SETTING_KEYS = st.sampled_from(sorted(setting.key for setting in SETTINGS))
# The settings a hostile value is aimed at: every one, those that read more than true/false twice as often.
TARGET_KEYS = SETTING_KEYS | st.sampled_from(sorted(s.key for s in SETTINGS if s.parse.__name__ != "parse_bool"))
OTHER_KEYS = st.one_of(
    st.sampled_from(sorted(set(ALIASES) | set(NO_EFFECT))),
    st.sampled_from(["env_production", "env_", "env_²", "apps", "deploy", "(deploy env)", "__proto__"]),
    HOSTILE_TEXT,
)

# Numbers as text, and the units after them: what durations, sizes, counts, ports and exit codes are read from.
NUMBER_TEXT = ["²", "٣", "9" * 5000, "9" * 400, "9" * 25, "1e400", "-1", "NaN", "0x10", " 7 ", ".5", "1.5", "0"]
NUMERIC = NUMBERS | st.sampled_from(NUMBER_TEXT)
ENV_NAMES_OK = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
CRON_FIELDS = ["*", "0", "59", "60", "²", "٣", "9" * 5000, "*/0", "*/7", "1-100", "5-1", "MON-FRI", "SUN-SAT",
               "JAN", "L", "1#2", "?", ",", "1,,2", "-", "/5", "*/²", "7"]


def _with_units(units: list[str]) -> st.SearchStrategy[object]:
    with_unit = st.builds(lambda number, unit: number + unit, st.sampled_from(NUMBER_TEXT), st.sampled_from(units))
    return with_unit | with_unit | NUMBERS


# For each kind of setting (by its parser), the values most likely to break it.
BY_PARSER: dict[str, st.SearchStrategy[object]] = {
    "parse_memory_bytes": _with_units(["", "K", "M", "G", "B", "mb", "²"]),
    "parse_duration_ms": _with_units(["", "ms", "s", "m", "h", "d"]),
    "parse_positive_duration_ms": _with_units(["", "ms", "s", "m", "h"]),
    "parse_count": NUMERIC,
    "parse_instances": NUMERIC,
    "parse_exit_codes": NUMERIC | st.lists(NUMERIC, max_size=3) | st.lists(st.sampled_from(NUMBER_TEXT),
                                                                             max_size=3).map(",".join),
    "parse_port": NUMERIC | st.builds(lambda host, port: f"{host}:{port}", st.sampled_from(
        ["127.0.0.1", "[::1]", "::1", "host", "", "[fe80::1%²]", "999.1.1.1", "[::ffff:1.2.3.4]"]),
        st.sampled_from([*NUMBER_TEXT, "80", "65535", "65536"])),
    "parse_env": st.dictionaries(ENV_NAMES_OK | HOSTILE_TEXT, NUMBERS | LEAF | VALUE, min_size=1, max_size=3),
    "parse_cron": st.lists(st.sampled_from(CRON_FIELDS), min_size=4, max_size=7).map(" ".join),
    "parse_bool": st.sampled_from([True, "true", "TRUE", "yes", 1, 0, None, "²", [], {}]),
    "parse_user_group": st.sampled_from(["²", "٣", "١٠", "0", "65535", "4294967295", "-1", "a:b", "root\\", " x",
                                         "9" * 5000, "nobody"]),
}
PARSER_OF = {setting.key: setting.parse.__name__ for setting in SETTINGS}


def _mutated(value: object, special: object) -> object:
    """A plausible value with something hostile in it: in a string, in a list, or under a new env-like name."""
    if isinstance(value, str):
        middle = len(value) // 2
        return value[:middle] + str(special) + value[middle:]
    if isinstance(value, list):
        return [*value[:1], special, *value[1:]]
    if isinstance(value, Mapping):
        return {**value, "HOSTILE": special}
    return special


@st.composite
def hostile_value(draw: st.DrawFn, key: str) -> object:
    """A value for `key`: the values most likely to break its kind of setting, one it takes with something
    hostile in it, one it takes as it is, or anything at all."""
    setting = ALIASES.get(key, key)
    plausible = PLAUSIBLE.get(setting, ["x"])
    kind = draw(st.sampled_from(["kind", "kind", "mutated", "plausible", "any"]))
    if kind == "kind" and PARSER_OF.get(setting) in BY_PARSER:
        return draw(BY_PARSER[PARSER_OF[setting]])
    if kind in ("kind", "mutated"):
        return _mutated(draw(st.sampled_from(plausible)), draw(st.sampled_from(SPECIAL_TEXT) | LEAF | VALUE))
    if kind == "plausible":
        return draw(st.sampled_from(plausible))
    return draw(VALUE)


@st.composite
def apps(draw: st.DrawFn) -> dict[str, object]:
    """An app that would start (a name, and a script that exists) with a hostile value for one setting, and
    maybe a few more keys of any kind."""
    app: dict[str, object] = {"name": "app", "script": "tool"}
    key = draw(TARGET_KEYS)
    app[key] = draw(hostile_value(key))
    for other in draw(st.lists(SETTING_KEYS | OTHER_KEYS, max_size=2)):
        app.setdefault(other, draw(hostile_value(other)))
    return app


@st.composite
def documents(draw: st.DrawFn) -> object:
    listed = draw(st.lists(apps(), min_size=1, max_size=2))
    shape = draw(st.sampled_from(["apps", "one", "list", "pm2", "deploy", "garbage"]))
    if shape == "one":
        return listed[0]
    if shape == "list":
        return listed
    if shape == "deploy":
        deploy = draw(st.dictionaries(st.sampled_from(["production", "staging"]) | HOSTILE_TEXT,
                                      st.fixed_dictionaries({"env": VALUE}) | VALUE, max_size=2))
        return {"apps": listed, "deploy": deploy}
    if shape == "garbage":
        return {draw(st.sampled_from(["apps", "pm2"])): draw(VALUE), "deploy": draw(VALUE)}
    return {shape: listed}


ENV_NAMES = st.none() | st.sampled_from(["production", "staging", "²", "a b", "x" * 300]) | st.text(max_size=6)

# ------------------------------------------------------------------------------------------ writing files


def toml_value(value: object) -> str | None:
    """TOML text for a value (inline tables and arrays), None for what TOML cannot hold (null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        items = [toml_value(item) for item in value]
        return "[" + ", ".join(item for item in items if item is not None) + "]"
    if isinstance(value, Mapping):
        pairs = [(toml_string(str(k)), toml_value(v)) for k, v in value.items()]
        return "{" + ", ".join(f"{k} = {v}" for k, v in pairs if v is not None) + "}"
    return None


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes, which TOML shares, and DEL, which TOML wants escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(document: object) -> str:
    """A TOML file: the document's keys, then each app of `apps` as an [[apps]] table (TOML has no top-level list:
    a list is the value of a key `x`, which is an app with no script)."""
    if not isinstance(document, Mapping):
        return f"x = {toml_value(document) or '{}'}\n"
    listed = document.get("apps")
    tables = listed if isinstance(listed, list) and all(isinstance(app, Mapping) for app in listed) else None
    lines = _toml_lines({k: v for k, v in document.items() if tables is None or k != "apps"})
    for app in tables or ():
        lines += ["[[apps]]", *_toml_lines(app)]
    return "\n".join(lines) + "\n"


def _toml_lines(mapping: Mapping[str, object]) -> list[str]:
    pairs = ((toml_string(str(key)), toml_value(value)) for key, value in mapping.items())
    return [f"{key} = {value}" for key, value in pairs if value is not None]


def write_document(directory: str, document: object, form: str) -> str | None:
    """The document as a file of that form; None when the form cannot hold it (a lone surrogate in UTF-8)."""
    try:
        if form == "json":
            text = json.dumps(document, ensure_ascii=False)
        elif form == "yaml":
            text = yaml.safe_dump(document, allow_unicode=True)
        else:
            text = to_toml(document)
        data = text.encode()
    except (UnicodeEncodeError, ValueError, yaml.YAMLError):
        return None
    path = os.path.join(directory, f"ecosystem.{form}")
    Path(path).write_bytes(data)
    return path


@contextmanager
def app_directory() -> Iterator[str]:
    """A directory holding the files the generated apps name: an executable `tool`, main.py, sub/."""
    with tempfile.TemporaryDirectory(prefix="pmsd-eco-fuzz-") as base:
        tool = os.path.join(base, "tool")
        Path(tool).write_text("#!/bin/sh\n")
        os.chmod(tool, stat.S_IRWXU)
        Path(base, "main.py").write_text("print('hi')\n")
        os.mkdir(os.path.join(base, "sub"))
        yield base


# ------------------------------------------------------------------------------------------ the property


def check_file(path: str, env_name: str | None, seconds: float = 20) -> list[AppSpec]:
    """Load, name and build every app of the file as `pmsd start <file>` does (user and system manager); the
    specs, or [] when pmsd refused it with an error that names the file."""
    label = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    warn: list[str] = []
    try:
        with time_limit(seconds, f"loading {path}"):
            raws = load_apps(path)
            ecosystem_names(path, (), env_name)
            specs = [build_spec(raw, Source(label, os.path.dirname(path)), env_name, SYSTEM_PATH, warn)
                     for raw in raws]
            for spec in specs:
                check_scope(spec, system=True)
                check_log_files(spec, True, os.getuid())
    except PmsdError as error:
        assert_names_the_file(error, label)
        return []
    for line in warn:
        assert line.startswith(label) and "\n" not in line, line
    return specs


def assert_names_the_file(error: PmsdError, label: str) -> None:
    message = error.message
    assert message.startswith((label, f"{label}:", "app ")), message
    # What the terminal shows: one line per line pmsd meant, no escape sequence a hostile value carried in.
    assert not any(char in message for char in "\r\x1b\x9b\0"), message
    assert "set_int_max_str_digits" not in message, message  # Python's advice to programmers, not to users


def check_accepted(spec: AppSpec, state_dir: str) -> None:
    """An accepted app reaches every unit line and property as meant, and is stored and read back unchanged."""
    check_everything_reads_back(spec, "/var/lib/pm[s]d*?/state")
    for system in (True, False):
        check = spec if system else replace(spec, user=None, group=None)
        for prop in transient_properties(UnitInputs(check, "/var/lib/pmsd/env/7.env", system=system), SYSTEMD_FLOOR):
            assert value_fits(prop.signature, prop.value), (prop.name, prop.signature, prop.value)
    if spec.user is not None:  # what a system app's log files are opened as
        runs_as_another_user(spec.user, True, os.getuid())
        with contextlib.suppress(KeyError):  # no such user or group here
            identity_of(spec.user, spec.group)
    registry = Registry(state_dir)
    with registry.transaction() as data:
        record = AppRecord(pm_id=data.allocate_id(), spec=spec, created_at=0)
        data.apps.append(record)
    assert registry.read().by_id(record.pm_id) == record
    env = record_environment({}, record)
    write_env_file(registry.record_env_file(record), env)
    assert read_env_file(registry.record_env_file(record)) == env
    # The definition pmsd keeps (restart flags, `start -w`) builds the same app again.
    again = build_spec(definition_of(spec), Source("again.json", spec.cwd), None, SYSTEM_PATH, [])
    assert again == spec


SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


@settings(max_examples=fuzz_examples(300), deadline=None, suppress_health_check=SLOW)
@given(document=documents(), form=st.sampled_from(["json", "yaml", "toml"]), env_name=ENV_NAMES)
def test_hostile_apps_are_built_right_or_refused_naming_the_file(document: object, form: str,
                                                                env_name: str | None) -> None:
    with app_directory() as base:
        path = write_document(base, document, form)
        if path is None:
            return
        for spec in check_file(path, env_name):
            check_accepted(spec, os.path.join(base, "state"))


# ------------------------------------------------------------------------------------------ PM2's dump

DUMP_KEYS = st.sampled_from(sorted({*CARRIED_KEYS, *RENAMED_KEYS, *LOG_PATH_KEYS, "exec_mode", "status", "pm_id",
                                    "pm_pid_path", "env", "instance_var", "NODE_APP_INSTANCE", "merge_logs"}))
DUMP_VALUES: dict[str, st.SearchStrategy[object]] = {
    "pm_pid_path": st.sampled_from(NUMBER_TEXT).map(lambda n: f"/root/.pm2/pids/app-{n}.pid"),
    "pm_out_log_path": st.sampled_from(NUMBER_TEXT).map(lambda n: f"out-{n}.log"),
    "exec_mode": st.sampled_from(["fork_mode", "cluster_mode", "²_mode", ""]) | VALUE,
}


@st.composite
def pm2_dumps(draw: st.DrawFn) -> object:
    """What `pm2 save` writes, one entry per instance, with hostile values (and sometimes no list at all)."""
    entries = []
    for _ in range(draw(st.integers(1, 3))):
        entry: dict[str, object] = {"name": draw(st.sampled_from(["api", "worker"])), "pm_exec_path": "tool"}
        for key in draw(st.lists(DUMP_KEYS, max_size=4)):
            special = DUMP_VALUES.get(key)
            entry[key] = draw(special if special is not None else hostile_value(RENAMED_KEYS.get(key, key)))
        entries.append(entry)
    return entries if draw(st.integers(0, 9)) else draw(VALUE)


@settings(max_examples=fuzz_examples(100), deadline=None, suppress_health_check=SLOW)
@given(dump=pm2_dumps())
def test_a_hostile_pm2_dump_is_imported_right_or_refused_naming_the_file(dump: object) -> None:
    with app_directory() as base:
        path = os.path.join(base, "dump.pm2")
        try:
            Path(path).write_text(json.dumps(dump, ensure_ascii=False))
        except (UnicodeEncodeError, ValueError):
            return
        try:
            with time_limit(20, f"importing {path}"):
                raws, _warnings = load_pm2_dump(path)
                specs = [build_spec(raw, Source(path, base), None, SYSTEM_PATH, []) for raw in raws]
        except PmsdError as error:
            assert_names_the_file(error, path)
            return
        for spec in specs:
            check_accepted(spec, os.path.join(base, "state"))


# ------------------------------------------------------------------------------------------ hostile file text

FRAGMENTS = {
    "json": ['{', '}', '[', ']', '"apps"', ':', ',', '"script"', '"tool"', '"name"', '"env"', "9" * 5000,
             "[" * 1200, "{\"a\":" * 1200, "NaN", "-Infinity", "1e999", '"\\ud800"', '"\\u0000"', "null", "true",
             "\ufeff", "²", "-", "0."],
    "yaml": ["apps:\n", "- ", "script: tool\n", "name: ", "&a ", "*a ", "[*a, *a, *a, *a]", "!!python/object:os.system",
             "!!binary x", "!!timestamp 2001-13-45", "!!int x", "!!float y", "? ", "<<: *a\n", "%YAML 1.1\n---\n",
             "\t", "  ", "\n", "9" * 5000, "[" * 1200, "{", "}", "2001-12-14", "!!set {x}", ": ", "|\n  x\n", "\0",
             "&a [*a]", "env: ", "~", "!!str", "--- !!map"],
    "toml": ["[[apps]]\n", "[apps]\n", "script = \"tool\"\n", "name = ", "env = ", "{", "}", "[", "]", "9" * 5000,
             "[" * 1200, "1979-05-27T07:32:00Z", "1979-02-30", "nan", "inf", "0x10", "1_000", "\"\\ud800\"", "'''",
             "\"\"\"", "a.b.c = 1\n", "\n", " = ", "x = ", "true", "[a.b]\n", "\0", "\r\n", "²"],
}


@st.composite
def file_text(draw: st.DrawFn, form: str) -> bytes:
    pieces = draw(st.lists(st.sampled_from(FRAGMENTS[form]) | st.text(max_size=4), max_size=12))
    text = "".join(pieces)
    if draw(st.booleans()):
        return text.encode(errors="surrogatepass")
    return draw(st.binary(max_size=40)) + text.encode(errors="surrogatepass")


@settings(max_examples=fuzz_examples(200), deadline=None, suppress_health_check=SLOW)
@given(data=st.data(), form=st.sampled_from(["json", "yaml", "yml", "toml"]), env_name=ENV_NAMES)
def test_hostile_file_text_is_loaded_or_refused_naming_the_file(data: st.DataObject, form: str,
                                                               env_name: str | None) -> None:
    content = data.draw(file_text("yaml" if form == "yml" else form), label="content")
    with app_directory() as base, no_node():
        path = os.path.join(base, f"ecosystem.config.{form}")
        Path(path).write_bytes(content)
        for spec in check_file(path, env_name):
            check_accepted(spec, os.path.join(base, "state"))


@contextmanager
def no_node() -> Iterator[None]:
    """PATH without node: a .json file that is not JSON is then refused at once rather than evaluated by node
    (test_hostile_javascript does that, with fewer examples)."""
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as empty:
        patch.setenv("PATH", empty)
        yield


# ------------------------------------------------------------------------------------------ JavaScript

JS_FRAGMENTS = [
    "undefined", "null", "10n", "NaN", "-0", "1e400", "Symbol('x')", "() => 1", "new Date(NaN)", "[,]",
    "{get x() { throw new Error('boom') }}", "(() => { const a = {}; a.a = a; return a })()", "'\\ud800'",
    "process.env.HOME", "process.env.NOPE", "require('os').hostname()", "'²'", "'a\\nb'", "{toJSON() { return 5 }}",
]


@st.composite
def javascript(draw: st.DrawFn) -> tuple[str, str]:
    suffix = draw(st.sampled_from([".config.js", ".config.cjs", ".config.mjs", ".json"]))
    document = json.dumps(draw(documents()), ensure_ascii=True)
    key = json.dumps(draw(st.sampled_from(sorted(PLAUSIBLE))))
    spliced = document.replace('"name": "app"', f"{key}: {draw(st.sampled_from(JS_FRAGMENTS))}", 1)
    if suffix == ".json":
        return suffix, spliced  # not JSON: PM2 (and pmsd) evaluate it as a JavaScript expression
    export = "export default " if suffix == ".config.mjs" else "module.exports = "
    return suffix, export + spliced + draw(st.sampled_from(["", ";", "\nthrow new Error('late')", "\n}"]))


@needs_node
@settings(max_examples=fuzz_examples(12, share=0.05), deadline=None, suppress_health_check=SLOW)
@given(source=javascript(), env_name=ENV_NAMES)
def test_hostile_javascript_is_loaded_or_refused_naming_the_file(source: tuple[str, str],
                                                                env_name: str | None) -> None:
    suffix, text = source
    with app_directory() as base:
        path = os.path.join(base, "ecosystem" + suffix)
        Path(path).write_text(text, errors="surrogatepass")
        for spec in check_file(path, env_name, seconds=60):
            check_accepted(spec, os.path.join(base, "state"))


# ------------------------------------------------------------------------------------------ regressions
# Each defect the fuzzers found (or that reading the code for them showed), with its smallest input.

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + level)}: &{chr(98 + level)} [{', '.join([f'*{chr(97 + level)}'] * 10)}]\n" for level in range(8)
) + "script: tool\nenv: {X: *i}\n"


@pytest.mark.parametrize(("name", "text", "fragment"), [
    # int() reads at most 4300 digits: ValueError (not a JSONDecodeError) escaped as a traceback.
    ("huge.json", '{"script": "tool", "x": ' + "9" * 5000 + "}", "invalid JSON: a number has more than 4300 digits"),
    ("huge.yaml", "script: tool\nx: " + "9" * 5000 + "\n", "invalid YAML: a number has more than 4300 digits"),
    ("huge.toml", 'script = "tool"\nx = ' + "9" * 5000 + "\n", "invalid TOML: a number has more than 4300 digits"),
    # Nesting past the recursion limit: RecursionError from every parser.
    ("deep.json", "[" * 2000 + "]" * 2000, "invalid JSON: nested too deeply"),
    ("deep.yaml", "[" * 2000 + "]" * 2000, "invalid YAML: nested too deeply"),
    ("deep.toml", "x = " + "[" * 2000 + "]" * 2000, "invalid TOML: nested too deeply"),
    # PyYAML's constructors raise what Python raises: AttributeError, ValueError.
    ("date.yaml", "!!timestamp 2001-13-45apps:\n", "invalid YAML: "),
    ("int.yaml", "script: tool\nx: !!int x\n", "invalid YAML: invalid literal for int()"),
    # An alias inside its own value is infinitely deep (RecursionError in env's JSON text); aliases of aliases
    # are 10^9 values ("billion laughs": a hang).
    ("self.yaml", "script: tool\nenv: {X: &a [*a]}\n", "values are nested deeper than 100 levels"),
    ("laughs.yaml", BILLION_LAUGHS, "holds more than 1000000 values"),
], ids=lambda value: value if isinstance(value, str) and value.endswith((".json", ".yaml", ".toml")) else "")
def test_documents_python_cannot_read_are_refused_naming_the_file(tmp_path: Path, name: str, text: str,
                                                                  fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with time_limit(20, f"loading {name}"), pytest.raises(UsageError) as caught:
        load_apps(str(path))
    assert caught.value.message.startswith(f"{path}: ") and fragment in caught.value.message, caught.value.message


def test_a_pm2_dump_python_cannot_read_is_refused(tmp_path: Path) -> None:
    dump = tmp_path / "dump.pm2"
    dump.write_text('[{"name": "api", "pm_exec_path": "/srv/a.js", "x": ' + "9" * 5000 + "}]")
    with pytest.raises(UsageError, match=r"not a PM2 dump: invalid JSON: a number has more than 4300 digits"):
        load_pm2_dump(str(dump))
    dump.write_text("[" * 2000 + "]" * 2000)
    with pytest.raises(UsageError, match="not a PM2 dump: invalid JSON: nested too deeply"):
        load_pm2_dump(str(dump))


@pytest.mark.parametrize("pid", ["9" * 5000, "٣"], ids=["5000 digits", "arabic-indic 3"])
def test_a_pid_file_number_int_cannot_read_leaves_the_log_path_as_it_is(tmp_path: Path, pid: str) -> None:
    # The pm_id in the pid file's name went to int(): ValueError for 5000 digits; "٣" was pm_id 3.
    dump = tmp_path / "dump.pm2"
    dump.write_text(json.dumps([{"name": "api", "pm_exec_path": "/srv/a.js", "pm_out_log_path": "/var/log/out-3.log",
                                 "pm_pid_path": f"/root/.pm2/pids/api-{pid}.pid"}]))
    (app,), _warnings = load_pm2_dump(str(dump))
    assert app["out_file"] == "/var/log/out-3.log"


@pytest.mark.parametrize("text", ["9" * 5000, "[" * 2000 + "]" * 2000], ids=["5000 digits", "deep"])
def test_stdin_python_cannot_read_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match=r"^stdin: invalid JSON: (a number has more|nested too deeply)"):
        read_stdin_apps(io.StringIO(text))


@pytest.mark.parametrize(("raw", "key", "fragment"), [
    # float() of 400 digits is infinity, and int(infinity) raised OverflowError.
    ({"max_memory_restart": "9" * 400 + "G"}, "max_memory_restart", "expected bytes or a size like"),
    ({"memory_max": "9" * 400}, "memory_max", "expected bytes or a size like"),
    # Python's \d and str.isdigit() take digits JavaScript's Number() does not: "٣s" was 3 s, "²" an int() error.
    ({"min_uptime": "٣s"}, "min_uptime", "expected milliseconds or a duration"),
    ({"max_restarts": "٣"}, "max_restarts", "expected a whole number (digits 0-9, at most 30)"),
    ({"instances": "9" * 5000}, "instances", "expected a whole number (digits 0-9, at most 30)"),
    ({"kill_timeout": "9" * 5000}, "kill_timeout", "expected milliseconds or a duration"),
    ({"stop_exit_codes": "0,²"}, "stop_exit_codes", "expected a whole number (digits 0-9, at most 30)"),
    # cron fields: int() of 5000 digits said "use sys.set_int_max_str_digits()".
    ({"cron_restart": "9" * 5000 + " * * * *"}, "cron_restart", "'minute': value 999999999... is out of range 0-59"),
    ({"cron_restart": "*/" + "9" * 5000 + " * * * *"}, "cron_restart", "'minute': step 999999999... is out of"),
    ({"port": "²", "instances": 2}, "port", "expected a port from 1 to 65535"),
    ({"port": "127.0.0.1:²", "instances": 2}, "port", "expected a port from 1 to 65535"),
    ({"user": "²"}, "user", "is not a numeric uid/gid (digits 0-9) nor a user or group name"),
    ({"group": "٣"}, "group", "is not a numeric uid/gid (digits 0-9) nor a user or group name"),
    ({"user": "9" * 5000}, "user", "is not a valid numeric uid/gid"),
    # A lone surrogate was stored, then writing the registry or the env file raised UnicodeEncodeError.
    ({"env": {"X": "\ud800"}}, "env", "lone surrogate U+D800"),
    ({"env": {"X": ["\udcff"]}}, "env", "lone surrogate U+DCFF"),
    ({"log_date_format": "\ud800"}, "log_date_format", "lone surrogate U+D800"),
    ({"watch": ["\ud800"]}, "watch", "lone surrogate U+D800"),
    ({"ignore_watch": "\ud800"}, "ignore_watch", "lone surrogate U+D800"),
    ({"filter_env": ["\ud800"]}, "filter_env", "lone surrogate U+D800"),
], ids=lambda value: ascii(value)[:24] if isinstance(value, dict) else "")
def test_values_python_misreads_are_refused_naming_file_app_and_key(app_dir: Path, raw: dict[str, object],
                                                                     key: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        build_spec({"name": "api", "script": "tool", **raw}, Source("e.json", str(app_dir)), None, SYSTEM_PATH, [])
    assert caught.value.message.startswith(f"e.json: app 'api', key {key!r}: "), caught.value.message
    assert fragment in caught.value.message, caught.value.message


def test_an_env_number_beyond_a_double_is_infinity_as_javascript_reads_it() -> None:
    # float(10**309) raised OverflowError; JSON.parse gives Infinity, which PM2 hands the app as "Infinity".
    assert parse_env({"X": 10**309, "Y": -(10**309), "Z": 10**21}) == {"X": "Infinity", "Y": "-Infinity", "Z": "1e+21"}


def test_the_start_limit_interval_fits_its_uint64(app_dir: Path) -> None:
    # burst x (min_uptime + first delay) x 1000 went past 2^64: D-Bus cannot carry it as StartLimitIntervalUSec.
    spec = build_spec({"name": "api", "script": "tool", "exp_backoff_restart_delay": 1152921504605847},
                      Source("e.json", str(app_dir)), None, SYSTEM_PATH, [])
    properties = {p.name: p for p in transient_properties(UnitInputs(spec, "/e", system=False), SYSTEMD_FLOOR)}
    assert properties["StartLimitIntervalUSec"].value == 2**64 - 2
    assert value_fits("t", properties["StartLimitIntervalUSec"].value)


def test_unknown_keys_cannot_write_lines_of_their_own(app_dir: Path) -> None:
    warn: list[str] = []
    build_spec({"name": "api", "script": "tool", "\n": 1, "a\x1b[2J": 2, "ok": 3}, Source("e.json", str(app_dir)),
               None, SYSTEM_PATH, warn)
    assert warn == ["e.json: app 'api': unknown keys ignored: '\\n', 'a\\x1b[2J', ok"]


@pytest.mark.parametrize("user", ["²", "٣"])
def test_a_uid_is_ascii_digits_as_systemd_reads_it(user: str) -> None:
    # int("²") raised ValueError where a KeyError (no such user) was handled; int("٣") is 3, uid 3 to pmsd and a
    # name to systemd.
    with pytest.raises(KeyError):
        identity_of(user)
    with pytest.raises(KeyError):
        identity_of("root", group=user)
    assert runs_as_another_user(user, True, 0)
