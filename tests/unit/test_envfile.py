from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsd.definition.environment import app_environment
from pmsd.state.envfiles import parse_env_file, read_env_file, render_env_file, write_env_file

TRICKY_VALUES = {
    "EMPTY": "",
    "DOUBLE": 'say "hi"',
    "SINGLE": "it's",
    "BACKSLASH": "C:\\path\\",
    "DOLLAR": "$HOME ${USER} $$",
    "BACKTICK": "`rm -rf /`",
    "NEWLINES": "line1\nline2\n\nline4\n",
    "UNICODE": "é 日本 🚀 \u2028",
    "EQUALS": 'a="b"=c',
    "ESCAPE_LIKE": "\\n \\\" \\$",
    "SPACES": "  padded  ",
    "HASH": "# not a comment",
    "QUOTE_AT_END": 'ends with "',
    "TRAILING_BACKSLASH": "\\",
}


def test_render_is_sorted_double_quoted_lines() -> None:
    assert render_env_file({"B": "2", "A": "1"}) == 'A="1"\nB="2"\n'


def test_render_escapes_exactly_what_systemd_unescapes_in_double_quotes() -> None:
    assert render_env_file({"V": 'a\\b"c`d$e\nf\'g'}) == 'V="a\\\\b\\"c\\`d\\$e\nf\'g"\n'


def test_round_trip_tricky_values() -> None:
    assert parse_env_file(render_env_file(TRICKY_VALUES)) == TRICKY_VALUES


def test_round_trip_empty_environment() -> None:
    assert render_env_file({}) == ""
    assert parse_env_file("") == {}


_NAMES = st.builds(lambda tail: "K" + tail,
                   st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", max_size=10))
_VALUES = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=40)


@settings(max_examples=75, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, max_size=8))
def test_round_trip_any_environment(env: dict[str, str]) -> None:
    assert parse_env_file(render_env_file(env)) == env


CALLER = {
    "HOME": "/home/me",
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "SHARED": "from caller",
    "NOTIFY_SOCKET": "/run/user/1000/systemd/notify",
    "LISTEN_FDS": "3",
    "LISTEN_PID": "99",
    "INVOCATION_ID": "deadbeef",
    "JOURNAL_STREAM": "8:1234",
    "MAINPID": "99",
    "PWD": "/somewhere",
    "OLDPWD": "/elsewhere",
    "SHLVL": "2",
    "_": "/usr/bin/pmsd",
    "WATCHDOG_USEC": "1000",
    "BAD\nKEY": "x",
}


def test_app_environment_drops_per_execution_variables() -> None:
    env = app_environment(CALLER, {}, 0, "api", "default")
    for key in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "INVOCATION_ID", "JOURNAL_STREAM", "MAINPID",
                "PWD", "OLDPWD", "SHLVL", "_", "WATCHDOG_USEC", "BAD\nKEY"):
        assert key not in env, key
    assert env["HOME"] == "/home/me"
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["LANG"] == "C.UTF-8"


def test_app_environment_layers_definition_over_caller() -> None:
    env = app_environment(CALLER, {"SHARED": "from definition", "OWN": "1"}, 0, "api", "default")
    assert env["SHARED"] == "from definition"
    assert env["OWN"] == "1"


def test_app_environment_sets_pm2_variables() -> None:
    env = app_environment({}, {}, 7, "my api", "backend")
    assert env == {"pm_id": "7", "name": "my api", "namespace": "backend", "NODE_APP_INSTANCE": "0"}


def test_app_environment_pm2_variables_win_over_definition() -> None:
    env = app_environment({"pm_id": "1"}, {"name": "spoof", "pm_id": "9"}, 3, "api", "default")
    assert env["pm_id"] == "3"
    assert env["name"] == "api"


def test_app_environment_keeps_an_explicit_node_app_instance() -> None:
    assert app_environment({}, {"NODE_APP_INSTANCE": "4"}, 0, "api", "default")["NODE_APP_INSTANCE"] == "4"


def test_app_environment_does_not_modify_its_inputs() -> None:
    caller = dict(CALLER)
    definition = {"OWN": "1"}
    app_environment(caller, definition, 0, "api", "default")
    assert caller == CALLER
    assert definition == {"OWN": "1"}


def test_write_env_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "env" / "7.env"
    write_env_file(str(path), TRICKY_VALUES)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert read_env_file(str(path)) == TRICKY_VALUES
    assert os.listdir(path.parent) == ["7.env"]


def test_read_env_file_keeps_carriage_returns(tmp_path: Path) -> None:
    path = tmp_path / "env" / "1.env"
    env = {"CR": "a\r\nb", "LONE_CR": "x\ry"}
    write_env_file(str(path), env)
    assert read_env_file(str(path)) == env


def test_write_env_file_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "env" / "1.env"
    write_env_file(str(path), {"A": "old"})
    before = os.stat(path).st_ino
    write_env_file(str(path), {"A": "new"})
    assert read_env_file(str(path)) == {"A": "new"}
    assert os.stat(path).st_ino != before  # a new file renamed over the old one, never rewritten in place
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["1.env"]


def test_write_env_file_leaves_no_temporary_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "env" / "1.env"
    write_env_file(str(path), {"A": "old"})
    with pytest.raises(UnicodeEncodeError):
        write_env_file(str(path), {"A": "\udcff"})  # a lone surrogate cannot be written as UTF-8
    assert read_env_file(str(path)) == {"A": "old"}
    assert os.listdir(path.parent) == ["1.env"]


# --------------------------------------------------------------------------------------------- filter_env

FILTERED_CALLER = {"HOME": "/home/me", "PATH": "/usr/bin", "AWS_SECRET_KEY": "s3cr3t", "MY_AWS_REGION": "eu",
                   "DB_TOKEN": "t", "LANG": "C.UTF-8"}


def test_filter_env_true_drops_the_whole_caller_environment() -> None:
    env = app_environment(FILTERED_CALLER, {"OWN": "1", "PATH": "/opt/bin"}, 4, "api", "jobs", filter_env=True)
    assert env == {"OWN": "1", "PATH": "/opt/bin", "pm_id": "4", "name": "api", "namespace": "jobs",
                   "NODE_APP_INSTANCE": "0"}


def test_filter_env_strings_drop_caller_variables_whose_names_contain_them() -> None:
    # PM2 (lib/Common.js) keeps a variable only if its name contains none of the strings.
    env = app_environment(FILTERED_CALLER, {}, 0, "api", "default", filter_env=("AWS_", "TOKEN"))
    assert "AWS_SECRET_KEY" not in env and "MY_AWS_REGION" not in env and "DB_TOKEN" not in env
    assert env["HOME"] == "/home/me" and env["LANG"] == "C.UTF-8"


def test_filter_env_never_touches_the_definition_or_pm2_variables() -> None:
    env = app_environment(FILTERED_CALLER, {"AWS_PROFILE": "prod"}, 2, "aws_sync", "default", instance=1,
                          instance_var="AWS_INSTANCE", filter_env=("AWS_", "name", "pm_"))
    assert env["AWS_PROFILE"] == "prod" and env["AWS_INSTANCE"] == "1"
    assert (env["pm_id"], env["name"]) == ("2", "aws_sync")
    assert "AWS_SECRET_KEY" not in env


def test_filter_env_false_keeps_the_caller_environment() -> None:
    assert app_environment(FILTERED_CALLER, {}, 0, "api", "default", filter_env=False)["AWS_SECRET_KEY"] == "s3cr3t"
