from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from pmsd.definition.build import COMPUTED_FIELDS, PASSTHROUGH_KEYS, build_spec
from pmsd.definition.settings import SETTINGS_BY_KEY
from pmsd.errors import ExitStatus, UsageError
from pmsd.model.spec import AppSpec, Source
from tests.unit.helpers import SYSTEM_PATH, make_spec, needs_node


def _build(raw: dict[str, object], source: Source, warn: list[str] | None = None,
           env_name: str | None = None, path_env: str | None = SYSTEM_PATH) -> AppSpec:
    return build_spec(raw, source, env_name, path_env, warn if warn is not None else [])


def _error(raw: dict[str, object], source: Source, env_name: str | None = None) -> UsageError:
    with pytest.raises(UsageError) as caught:
        _build(raw, source, env_name=env_name)
    assert caught.value.status == ExitStatus.USAGE
    return caught.value


def _which(program: str) -> str:
    found = shutil.which(program, path=SYSTEM_PATH)
    if found is None:
        pytest.skip(f"{program} is not installed")
    return os.path.abspath(found)


# ------------------------------------------------------------------------------------------ paths and names


def test_relative_script_resolves_against_base_dir(app_dir: Path, source: Source) -> None:
    spec = _build({"script": "main.py"}, source)
    assert spec.script == str(app_dir / "main.py")
    assert spec.cwd == str(app_dir)


def test_relative_script_resolves_against_cwd(app_dir: Path, source: Source) -> None:
    (app_dir / "sub").mkdir()
    (app_dir / "sub" / "other.py").write_text("")
    spec = _build({"script": "other.py", "cwd": "sub"}, source)
    assert spec.cwd == str(app_dir / "sub")
    assert spec.script == str(app_dir / "sub" / "other.py")


def test_absolute_script_and_cwd(app_dir: Path, tmp_path: Path) -> None:
    spec = _build({"script": str(app_dir / "main.py"), "cwd": str(tmp_path)}, Source("command line", "/"))
    assert spec.script == str(app_dir / "main.py")
    assert spec.cwd == str(tmp_path)


def test_cwd_that_is_not_a_directory(source: Source) -> None:
    error = _error({"name": "api", "script": "main.py", "cwd": "main.py"}, source)
    assert "'cwd'" in error.message and "not a directory" in error.message


@pytest.mark.parametrize(("script", "name"), [("main.py", "main"), ("run.sh", "run"),
                                              pytest.param("server.js", "server", marks=needs_node),
                                              ("tool", "tool"), ("sleep", "sleep")])
def test_default_name_is_the_script_without_extension(source: Source, script: str, name: str) -> None:
    assert _build({"script": script}, source).name == name


def test_explicit_name_wins(source: Source) -> None:
    assert _build({"script": "main.py", "name": "my api"}, source).name == "my api"


@pytest.mark.parametrize("name", ["123", "all", "bad\nname"])
def test_invalid_name_is_reported_with_key(source: Source, name: str) -> None:
    error = _error({"script": "main.py", "name": name}, source)
    assert "ecosystem.config.json" in error.message and "'name'" in error.message


def test_empty_namespace_is_rejected(source: Source) -> None:
    error = _error({"script": "main.py", "namespace": ""}, source)
    assert "'namespace'" in error.message


# ------------------------------------------------------------------------------------------ interpreters


@pytest.mark.parametrize(("script", "interpreter"), [("main.py", "python3"), ("run.sh", "bash"),
                                                     ("server.js", "node")])
def test_interpreter_by_extension(app_dir: Path, source: Source, script: str, interpreter: str) -> None:
    path = _which(interpreter)
    spec = _build({"script": script, "args": ["--port", "80"]}, source)
    assert spec.interpreter == path
    assert spec.exec_path == path
    assert spec.argv == (path, str(app_dir / script), "--port", "80")
    assert spec.args == ("--port", "80")


def test_interpreter_args_go_before_the_script(app_dir: Path, source: Source) -> None:
    python = _which("python3")
    spec = _build({"script": "main.py", "interpreter_args": "-u -X dev", "args": "'hello world'"}, source)
    assert spec.argv == (python, "-u", "-X", "dev", str(app_dir / "main.py"), "hello world")
    assert spec.interpreter_args == ("-u", "-X", "dev")


def test_explicit_interpreter_by_name_and_path(app_dir: Path, source: Source) -> None:
    bash = _which("bash")
    assert _build({"script": "data.txt", "interpreter": "bash"}, source).exec_path == bash
    assert _build({"script": "main.py", "interpreter": bash}, source).argv == (bash, str(app_dir / "main.py"))


def test_unknown_interpreter(source: Source) -> None:
    error = _error({"name": "api", "script": "main.py", "interpreter": "no-such-interpreter-xyz"}, source)
    assert "ecosystem.config.json" in error.message and "'api'" in error.message
    assert "no-such-interpreter-xyz" in error.message


def test_interpreter_none_runs_an_executable_directly(app_dir: Path, source: Source) -> None:
    spec = _build({"script": "tool", "interpreter": "none", "args": ["a"]}, source)
    assert spec.interpreter == "none"
    assert spec.exec_path == str(app_dir / "tool")
    assert spec.argv == (str(app_dir / "tool"), "a")


def test_executable_without_known_extension_runs_directly(app_dir: Path, source: Source) -> None:
    spec = _build({"script": "tool"}, source)
    assert spec.interpreter == "none"
    assert spec.exec_path == str(app_dir / "tool")


@pytest.mark.parametrize("raw", [{"script": "main.py", "interpreter": "none"}, {"script": "data.txt"}])
def test_non_executable_file_without_interpreter(app_dir: Path, source: Source, raw: dict[str, object]) -> None:
    error = _error(raw, source)
    assert "is not executable" in error.message
    assert str(app_dir / str(raw["script"])) in error.message
    assert error.hint is not None and "--interpreter" in error.hint


def test_command_on_path_is_executed_directly(source: Source) -> None:
    sleep = _which("sleep")
    spec = _build({"script": "sleep", "args": "100"}, source)
    assert spec.script == sleep
    assert spec.interpreter == "none"
    assert spec.exec_path == sleep
    assert spec.argv == (sleep, "100")


def test_command_found_on_the_apps_own_path(tmp_path: Path, source: Source) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mytool").write_text("#!/bin/sh\n")
    os.chmod(bin_dir / "mytool", 0o755)
    spec = _build({"script": "mytool", "env": {"PATH": str(bin_dir)}}, source)
    assert spec.exec_path == str(bin_dir / "mytool")


@pytest.mark.parametrize("script", ["missing.py", "lib/missing", "missing.js"])
def test_missing_script_names_the_path(app_dir: Path, source: Source, script: str) -> None:
    error = _error({"name": "api", "script": script}, source)
    assert str(app_dir / script) in error.message
    assert "ecosystem.config.json" in error.message and "'api'" in error.message


def test_missing_command(app_dir: Path, source: Source) -> None:
    error = _error({"script": "no-such-command-xyz"}, source)
    assert "no-such-command-xyz" in error.message and str(app_dir) in error.message


def test_missing_script_key(source: Source) -> None:
    error = _error({"name": "api"}, source)
    assert "'script'" in error.message and "missing" in error.message


# ------------------------------------------------------------------------------------------ keys


def test_unknown_keys_are_named_in_a_warning(source: Source) -> None:
    warn: list[str] = []
    _build({"name": "api", "script": "main.py", "scirpt": "x", "bogus": 1}, source, warn)
    assert len(warn) == 1
    assert "ecosystem.config.json" in warn[0] and "'api'" in warn[0]
    assert "unknown keys ignored: bogus, scirpt" in warn[0]


def test_pm2_keys_with_no_effect_get_their_own_warning_with_reasons(source: Source) -> None:
    warn: list[str] = []
    _build({"name": "api", "script": "main.py", "source_map_support": True, "pid_file": "x.pid",
            "bogus": 1}, source, warn)
    assert len(warn) == 2
    no_effect = next(w for w in warn if "no effect" in w)
    assert "pid_file (" in no_effect and "; source_map_support (" in no_effect
    assert "bogus" not in no_effect
    assert not any("source_map_support" in w for w in warn if "unknown" in w)


def test_filter_env_and_treekill_are_honoured_without_a_warning(source: Source) -> None:
    warn: list[str] = []
    spec = _build({"name": "api", "script": "main.py", "filter_env": True, "treekill": False}, source, warn)
    assert warn == []
    assert (spec.filter_env, spec.treekill) == (True, False)


def test_filter_env_and_treekill_as_the_command_line_passes_them(source: Source) -> None:
    # `--filter-env` alone, `--filter-env A --filter-env B` (joined with ","), `--no-treekill`.
    assert _build({"script": "main.py", "filter_env": "true"}, source).filter_env is True
    assert _build({"script": "main.py", "filter_env": "AWS_,SECRET"}, source).filter_env == ("AWS_", "SECRET")
    assert _build({"script": "main.py", "treekill": False}, source).treekill is False


def test_filter_env_and_treekill_survive_the_registry() -> None:
    spec = make_spec(filter_env=("AWS_", "TOKEN"), treekill=False)
    assert AppSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    spec = make_spec(filter_env=True)
    assert AppSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    old = {k: v for k, v in make_spec().to_json().items() if k not in ("filter_env", "treekill")}
    assert (AppSpec.from_json(old).filter_env, AppSpec.from_json(old).treekill) == (False, True)


def test_known_keys_and_env_overlays_do_not_warn(source: Source) -> None:
    warn: list[str] = []
    _build({"name": "api", "script": "main.py", "env_production": {"A": "1"}, "node_args": "-u",
            "autorestart": False}, source, warn)
    assert warn == []


@pytest.mark.parametrize(("key", "value"), [
    ("max_restarts", "abc"), ("max_restarts", -1), ("autorestart", "maybe"), ("restart_delay", "soon"),
    ("min_uptime", [1]), ("stop_exit_codes", 300), ("kill_timeout", 0), ("args", "'unclosed"),
    ("env", ["A=1"]), ("namespace", None), ("user", {}),
])
def test_wrong_type_names_file_app_and_key(source: Source, key: str, value: object) -> None:
    error = _error({"name": "api", "script": "main.py", key: value}, source)
    assert error.message.startswith(f"ecosystem.config.json: app 'api', key '{key}': ")


def test_wrong_type_through_an_alias_names_the_key_as_written(source: Source) -> None:
    error = _error({"name": "api", "script": "main.py", "node_args": 3}, source)
    assert "key 'node_args'" in error.message


def test_wrong_type_in_an_app_without_name(source: Source) -> None:
    error = _error({"script": "main.py", "max_restarts": "abc"}, source)
    assert error.message.startswith("ecosystem.config.json: an app, key 'max_restarts': ")


def test_values_are_parsed(source: Source) -> None:
    spec = _build({"script": "main.py", "autorestart": "false", "restart_delay": "2s", "max_restarts": "3",
                   "min_uptime": "1m", "stop_exit_codes": "0,3", "kill_timeout": 5000, "namespace": "backend",
                   "time": True, "autostart": False}, source)
    assert (spec.autorestart, spec.restart_delay, spec.max_restarts, spec.min_uptime) == (False, 2000, 3, 60_000)
    assert (spec.stop_exit_codes, spec.kill_timeout, spec.namespace) == ((0, 3), 5000, "backend")
    assert spec.time is True and spec.autostart is False


def test_defaults(source: Source) -> None:
    spec = _build({"script": "main.py"}, source)
    assert spec == AppSpec(name="main", script=spec.script, interpreter=spec.interpreter,
                           exec_path=spec.exec_path, argv=spec.argv, cwd=spec.cwd)


@pytest.mark.parametrize(("raw", "field", "expected"), [
    ({"node_args": ["--inspect"]}, "interpreter_args", ("--inspect",)),
    ({"interpreter_args": "--inspect -u"}, "interpreter_args", ("--inspect", "-u")),
    ({"uid": "www-data"}, "user", "www-data"),
    ({"gid": "www-data"}, "group", "www-data"),
])
def test_aliases(source: Source, raw: dict[str, object], field: str, expected: object) -> None:
    spec = _build({"script": "main.py", **raw}, source)
    assert getattr(spec, field) == expected


def test_exec_interpreter_alias(source: Source) -> None:
    assert _build({"script": "data.txt", "exec_interpreter": "bash"}, source).interpreter == _which("bash")


# ------------------------------------------------------------------------------------------ settings -> AppSpec

SETTING_KEYS = set(SETTINGS_BY_KEY)
APPSPEC_FIELDS = {field.name for field in dataclasses.fields(AppSpec)}
# A non-default value for every passed-through setting, as a file would give it.
PASSTHROUGH_SAMPLE: dict[str, object] = {
    "autorestart": False, "autostart": False, "restart_delay": 250, "max_restarts": 3, "min_uptime": "2s",
    "stop_exit_codes": [0, 3], "kill_timeout": 5000, "user": "nobody", "group": "nogroup", "time": True,
    "interpreter_args": ["-u"], "args": ["a b"], "disable_logs": True, "merge_logs": True,
    "log_date_format": "YYYY-MM-DD", "log_type": "json", "exp_backoff_restart_delay": 100,
    "max_memory_restart": "150M", "memory_max": "1G", "cron_restart": "@daily", "ignore_watch": ["tmp"],
    "watch_delay": 500, "instances": 3, "wait_ready": True, "listen_timeout": 5000, "instance_var": "ID",
    "increment_var": "N", "filter_env": ["SECRET_"], "treekill": False, "shutdown_with_message": True,
    "log_max_size": "10M", "log_retain": 5, "log_compress": True, "log_rotate_interval": "24h",
}


def test_every_setting_is_passed_through_computed_or_not_an_appspec_field() -> None:
    derived = (SETTING_KEYS & APPSPEC_FIELDS) - COMPUTED_FIELDS
    assert derived == PASSTHROUGH_KEYS
    assert derived == set(PASSTHROUGH_SAMPLE)
    computed_settings = SETTING_KEYS & COMPUTED_FIELDS
    assert computed_settings == {
        "name", "script", "interpreter", "cwd", "namespace", "env", "exec_mode", "port", "watch", "out_file",
        "error_file", "log_file",
    }
    not_fields = SETTING_KEYS - APPSPEC_FIELDS
    assert not_fields == {"append_env_to_name", "execute_command"}  # read by build steps (name, exec_mode)
    assert not derived & computed_settings
    assert derived | computed_settings | not_fields == SETTING_KEYS


def test_every_appspec_field_is_produced() -> None:
    produced = PASSTHROUGH_KEYS | COMPUTED_FIELDS
    assert produced == APPSPEC_FIELDS
    computed_not_settings = COMPUTED_FIELDS - SETTING_KEYS
    assert computed_not_settings == {"exec_path", "argv"}  # program resolution's own
    # build_spec passes every computed field to AppSpec by name (the passed-through ones come as **values).
    tree = ast.parse(textwrap.dedent(inspect.getsource(build_spec)))
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "AppSpec")
    named = {keyword.arg for keyword in call.keywords if keyword.arg is not None}
    assert named == COMPUTED_FIELDS


def test_passed_through_settings_reach_the_spec_as_parsed(source: Source) -> None:
    spec = _build({"script": "main.py", **PASSTHROUGH_SAMPLE}, source)
    for key, value in PASSTHROUGH_SAMPLE.items():
        parsed = SETTINGS_BY_KEY[key].parse(value)
        assert parsed != SETTINGS_BY_KEY[key].default, key
        assert getattr(spec, key) == parsed, key


# ------------------------------------------------------------------------------------------ env


ENV_APP: dict[str, object] = {
    "script": "main.py",
    "env": {"A": "1", "B": "base", "N": 5},
    "env_production": {"B": "prod", "C": True},
    "env_staging": {"B": "staging"},
}


def test_env_without_env_name(source: Source) -> None:
    assert _build(ENV_APP, source).env == {"A": "1", "B": "base", "N": "5"}


def test_env_overlay_with_env_name(source: Source) -> None:
    assert _build(ENV_APP, source, env_name="production").env == {"A": "1", "B": "prod", "N": "5", "C": "true"}
    assert _build(ENV_APP, source, env_name="staging").env["B"] == "staging"


def test_env_overlay_that_does_not_exist_is_ignored(source: Source) -> None:
    assert _build(ENV_APP, source, env_name="nowhere").env == {"A": "1", "B": "base", "N": "5"}


def test_env_overlay_without_base_env(source: Source) -> None:
    spec = _build({"script": "main.py", "env_production": {"B": "prod"}}, source, env_name="production")
    assert spec.env == {"B": "prod"}


def test_broken_env_overlay_names_its_key(source: Source) -> None:
    error = _error({"name": "api", "script": "main.py", "env_production": ["B=prod"]}, source,
                   env_name="production")
    assert "key 'env_production'" in error.message


# ------------------------------------------------------------------------------------------ log files


def test_log_paths_are_relative_to_cwd(app_dir: Path, source: Source) -> None:
    (app_dir / "logs").mkdir()
    spec = _build({"script": "main.py", "out_file": "logs/out.log", "error_file": str(app_dir / "err.log"),
                   "log_file": "logs/../all.log"}, source)
    assert spec.out_file == str(app_dir / "logs" / "out.log")
    assert spec.error_file == str(app_dir / "err.log")
    assert spec.log_file == str(app_dir / "all.log")


@pytest.mark.parametrize(("alias", "field"), [("output", "out_file"), ("error", "error_file"), ("log", "log_file")])
def test_log_path_aliases(app_dir: Path, source: Source, alias: str, field: str) -> None:
    assert getattr(_build({"script": "main.py", alias: "x.log"}, source), field) == str(app_dir / "x.log")


def test_log_path_in_a_missing_directory_is_taken_and_one_through_a_file_is_not(app_dir: Path,
                                                                                  source: Source) -> None:
    """PM2 creates missing directories (pmsd does at start); a path through a file can never be created."""
    assert _build({"name": "api", "script": "main.py", "out_file": "nope/deep/out.log"}, source).out_file == str(
        app_dir / "nope" / "deep" / "out.log")
    error = _error({"name": "api", "script": "main.py", "out_file": "main.py/out.log"}, source)
    assert "key 'out_file'" in error.message and f"{app_dir / 'main.py'} is not a directory" in error.message


def test_log_path_that_is_a_directory(app_dir: Path, source: Source) -> None:
    (app_dir / "logs").mkdir()
    error = _error({"name": "api", "script": "main.py", "error_file": "logs"}, source)
    assert "key 'error_file'" in error.message and "is a directory" in error.message


def test_log_type(source: Source) -> None:
    assert _build({"script": "main.py", "log_type": "json"}, source).log_type == "json"
    error = _error({"script": "main.py", "log_type": "xml"}, source)
    assert "key 'log_type'" in error.message


# ------------------------------------------------------------------------------------------ serialisation


def test_appspec_json_round_trip(source: Source) -> None:
    spec = _build({"script": "main.py", "args": ["a b"], "node_args": "-u", "stop_exit_codes": [0, 3],
                   "env": {"A": "1"}, "uid": "nobody"}, source)
    assert AppSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_appspec_from_json_ignores_unknown_fields() -> None:
    data = {"name": "a", "script": "/a", "interpreter": "none", "exec_path": "/a", "argv": ["/a"], "cwd": "/",
            "from_a_future_version": 1}
    assert AppSpec.from_json(data).argv == ("/a",)


def test_non_string_key_from_yaml_is_reported_not_crashed(source: Source) -> None:
    raw: dict[object, object] = {"script": "main.py", 1: "x"}
    warn: list[str] = []
    try:
        build_spec(raw, source, None, SYSTEM_PATH, warn)  # type: ignore[arg-type]
    except UsageError:
        return
    assert any("1" in w for w in warn)


@pytest.mark.parametrize("watch", ["~\x00", ["ok", "a\x00b"]])
def test_a_watch_path_with_a_nul_byte_is_refused_not_a_crash(watch: object) -> None:
    """Regression (found by hypothesis, tests/unit/test_unit_values.py): os.path.expanduser raised ValueError."""
    with pytest.raises(UsageError, match="key 'watch': a path cannot hold a NUL byte"):
        build_spec({"name": "w", "script": "/bin/sleep", "interpreter": "none", "watch": watch},
                   Source("e.json", "/tmp"), None, SYSTEM_PATH, [])


def test_a_spec_read_back_is_the_spec_written_and_stays_frozen() -> None:
    """from_json builds a whole record without __init__ (30 ms of `jlist` at 1,000 apps): it must still equal,
    hash and refuse changes as one made by __init__, and a record of an older version still gets the defaults."""
    spec = make_spec(name="api", args=("a", "b"), env={"K": "v"})
    again = AppSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.args == ("a", "b") and isinstance(again.argv, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.name = "other"  # type: ignore[misc]
    older = spec.to_json()
    del older["shutdown_with_message"]
    assert AppSpec.from_json(older) == spec
    del older["name"]
    with pytest.raises(TypeError):
        AppSpec.from_json(older)
