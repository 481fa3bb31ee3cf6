"""Every key of PM2's ecosystem schema is honoured, mapped, or accepted with a stated lack of effect.

The key names are PM2 7.0.4's (lib/API/schema.json, and the aliases it lists there), the interface an ecosystem
file is written against. tests/pm2/test_differential.py reads the installed PM2's own file, so a newer PM2
that adds a key shows up there too.
"""

from __future__ import annotations

import pytest

from pmsd.definition.settings import ALIASES, NO_EFFECT, NO_EFFECT_ALIASES, SETTINGS_BY_KEY, camel_case

PM2_SCHEMA_KEYS = (
    "append_env_to_name", "args", "automation", "autorestart", "autostart", "cron_restart", "cwd", "deep_monitoring",
    "disable_logs", "disable_source_map_support", "disable_trace", "env", "error_file", "event_loop_inspector",
    "exec_interpreter", "exec_mode", "execute_command", "exp_backoff_restart_delay", "filter_env", "force", "gid",
    "ignore_watch", "increment_var", "install_url", "instance_var", "instances", "io", "kill_retry_time",
    "kill_timeout", "listen_timeout", "log_date_format", "log_file", "log_type", "max_memory_restart",
    "max_restarts", "merge_logs", "min_uptime", "name", "name_prefix", "namespace", "node_args", "out_file",
    "pid_file", "pmx", "port", "post_update", "restart_delay", "script", "shutdown_with_message",
    "source_map_support", "stop_exit_codes", "time", "trace", "treekill", "uid", "username", "v8", "vizion",
    "wait_ready", "watch", "watch_delay", "watch_options", "windowsHide", "write",
)
PM2_SCHEMA_ALIASES = (
    "exec", "interpreter", "interpreterArgs", "interpreter_args", "out", "output", "out_log", "error", "err",
    "err_file", "err_log", "log", "pid", "cron", "combine_logs", "user",
)
# Spellings PM2's code reads beyond the schema (lib/Common.js, lib/API.js): script's other names.
PM2_CODE_ALIASES = ("cmd", "command")


def pm2_key_meaning(key: str) -> str | None:
    if key in SETTINGS_BY_KEY:
        return "setting"
    if key in ALIASES:
        return "alias"
    if key in NO_EFFECT or key in NO_EFFECT_ALIASES:
        return "no effect"
    return None


@pytest.mark.parametrize("key", PM2_SCHEMA_KEYS + PM2_SCHEMA_ALIASES + PM2_CODE_ALIASES)
def test_every_pm2_key_has_apm2_key_meaning(key: str) -> None:
    assert pm2_key_meaning(key) is not None, f"{key}: not a setting, an alias or a key with no effect"


@pytest.mark.parametrize("key", PM2_SCHEMA_KEYS)
def test_every_pm2_key_has_its_camel_case_spelling(key: str) -> None:
    assert pm2_key_meaning(camel_case(key)) is not None


@pytest.mark.parametrize(("alias", "key"), [
    ("exec", "script"), ("cmd", "script"), ("command", "script"), ("out", "out_file"), ("err", "error_file"),
    ("maxMemoryRestart", "max_memory_restart"), ("execMode", "exec_mode"), ("log", "log_file"),
])
def test_aliases_name_their_setting(alias: str, key: str) -> None:
    assert ALIASES[alias] == key


def test_camel_case_is_pm2s() -> None:
    assert camel_case("max_memory_restart") == "maxMemoryRestart"
    assert camel_case("exec_interpreter") == "execInterpreter"
    assert camel_case("name") == "name"
