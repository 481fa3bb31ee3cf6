from __future__ import annotations

import dataclasses
import json
import os
import pwd
import re
import shutil
import subprocess
from typing import Any

import pytest

from pmsd.model.status import ProcessInfo, Status
from pmsd.render import describe, formats, jlist, jlisttext, table
from tests.unit.helpers import display_width, make_record

NOW_MS = 1_700_000_100_000


def _info(name: str = "api", status: Status = Status.ONLINE, pm_id: int = 0, **spec: Any) -> ProcessInfo:
    running = status is Status.ONLINE
    return ProcessInfo(
        record=make_record(pm_id=pm_id, name=name, **spec),
        unit=f"pmsd-{pm_id}.service",
        status=status,
        pid=4242 if running else 0,
        restart_time=3,
        unstable_restarts=2,
        uptime_since_ms=NOW_MS - 90_000 if running else 0,
        memory_bytes=12 * 1024 * 1024 if running else 0,
        cpu_percent=1.5 if running else 0.0,
        exit_code=None if running else 1,
        invocation_id="abc123" if running else "",
        control_group="/user.slice/x.service",
    )


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize(("since", "now", "text"), [
    (0, NOW_MS, "0"), (NOW_MS, NOW_MS, "0s"), (NOW_MS - 59_999, NOW_MS, "59s"), (NOW_MS - 60_000, NOW_MS, "1m"),
    (NOW_MS - 3_599_000, NOW_MS, "59m"), (NOW_MS - 3_600_000, NOW_MS, "1h"), (NOW_MS - 86_400_000, NOW_MS, "1D"),
    (NOW_MS - 3 * 86_400_000, NOW_MS, "3D"), (NOW_MS + 5000, NOW_MS, "0s"),
])
def test_uptime(since: int, now: int, text: str) -> None:
    assert formats.uptime(since, now) == text


@pytest.mark.parametrize(("size", "text"), [
    (0, "0b"), (-1, "0b"), (1, "1b"), (1023, "1023b"), (1024, "1kb"), (1536, "2kb"), (1024**2, "1.0mb"),
    (int(12.34 * 1024**2), "12.3mb"), (1024**3, "1.0gb"), (5 * 1024**4, "5120.0gb"),
])
def test_memory(size: int, text: str) -> None:
    assert formats.memory(size) == text


# ------------------------------------------------------------------------------------------ table


def _box_columns(line: str) -> list[int]:
    """Display columns of the table's vertical separators on one line."""
    columns, position = [], 0
    for char in line:
        if char in "│┌┬┐├┼┤└┴┘":
            columns.append(position)
        position += display_width(char)
    return columns


def test_table_has_pm2s_columns() -> None:
    text = table.render([_info()], NOW_MS, colour=False)
    header = [cell.strip() for cell in text.splitlines()[1].strip("│").split("│")]
    assert header == ["id", "name", "namespace", "mode", "pid", "uptime", "↺", "status", "cpu", "mem", "user"]
    row = [cell.strip() for cell in text.splitlines()[3].strip("│").split("│")]
    assert row[:10] == ["0", "api", "default", "fork", "4242", "1m", "3", "online", "1.5%", "12.0mb"]
    assert row[10]  # the current user, or the app's User=


def test_table_shows_the_apps_user() -> None:
    text = table.render([_info(user="www-data")], NOW_MS, colour=False)
    assert text.splitlines()[3].rstrip("│").rstrip().endswith("www-data")


def test_table_aligns_wide_unicode_names() -> None:
    infos = [_info("api", pm_id=0), _info("日本語のアプリ🚀", Status.STOPPED, pm_id=1),
             _info("cafe\u0301", Status.ERRORED, pm_id=2)]
    lines = table.render(infos, NOW_MS, colour=False).rstrip("\n").split("\n")
    assert len(lines) == 3 + len(infos) + 1
    assert len({display_width(line) for line in lines}) == 1
    assert len({tuple(_box_columns(line)) for line in lines}) == 1


def test_table_colour_does_not_break_alignment() -> None:
    infos = [_info("api"), _info("日本", Status.STOPPED, pm_id=1)]
    coloured = table.render(infos, NOW_MS, colour=True)
    assert "\x1b[" in coloured
    plain = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert plain == table.render(infos, NOW_MS, colour=False)


def test_empty_table_has_header_only() -> None:
    lines = table.render([], NOW_MS, colour=False).splitlines()
    assert len(lines) == 4


# ------------------------------------------------------------------------------------------ jlist


def test_render_json_has_the_keys_pm2_tools_read() -> None:
    [entry] = json.loads(jlist.render_json([_info(pm_id=5)], user=True))
    assert entry["pid"] == 4242
    assert entry["name"] == "api"
    assert entry["pm_id"] == 5
    assert entry["monit"] == {"memory": 12 * 1024 * 1024, "cpu": 1.5}
    env = entry["pm2_env"]
    expected = {
        "status": "online", "restart_time": 3, "unstable_restarts": 2, "pm_uptime": NOW_MS - 90_000,
        "created_at": 1_700_000_000_000, "exec_mode": "fork_mode", "instances": 1, "namespace": "default",
        "pm_exec_path": "/srv/app/main.py", "pm_cwd": "/srv/app", "exec_interpreter": "python3",
        "exit_code": None, "unit_name": "pmsd-5.service", "invocation_id": "abc123",
    }
    assert {key: env[key] for key in expected} == expected


def test_render_json_stopped_app() -> None:
    [entry] = json.loads(jlist.render_json([_info(status=Status.STOPPED, interpreter="none")], user=False))
    assert entry["pid"] == 0
    assert entry["pm2_env"]["status"] == "stopped"
    assert entry["pm2_env"]["exit_code"] == 1
    assert entry["pm2_env"]["invocation_id"] is None
    assert entry["pm2_env"]["exec_interpreter"] == "none"
    assert entry["pm2_env"]["scope"] == "system"


def test_render_json_keeps_unicode_and_is_one_line() -> None:
    text = jlist.render_json([_info("日本"), _info("b", pm_id=1)], user=True)
    assert text.endswith("\n") and text.count("\n") == 1
    assert "日本" in text
    assert [e["name"] for e in json.loads(text)] == ["日本", "b"]


def test_entries_prepared_from_the_records_are_the_same_text() -> None:
    """`pmsd prettylist` builds each entry's record part while god works out the state (PreparedEntries): the text,
    key order included, is what building each entry at once gives; an entry prepared from another record
    object (the registry changed in between) is built again from the one listed."""
    infos = [_info("api", instances=2, increment_var="PORT", env={"PORT": "80"}),
             _info("db", Status.STOPPED, pm_id=1, instance_var="INSTANCE_ID")]
    prepared = jlist.PreparedEntries(user=True)
    stale = make_record(pm_id=1, name="old-db")
    prepared.prepare([infos[0].record, stale])
    assert jlist.render_pretty(infos, True, prepared) == jlist.render_pretty(infos, True)
    prepared.prepare([info.record for info in infos])
    assert jlist.render_pretty(infos, True, prepared) == jlist.render_pretty(infos, True)


def test_jlist_text_from_templates_is_render_json_text() -> None:
    """`pmsd jlist` writes its text from the templates god keeps (pmsd.render.jlisttext): byte for byte
    render_json's, for running and stopped apps, instances, unicode, quotes and "%", entries without a template
    (god did not make one: encoded whole), and a record the templates cannot hold (a marker in its text)."""
    infos = [_info("api", instances=2, increment_var="PORT", env={"PORT": "80", "Q": 'say "hi" \\ 100% ünï'}),
             _info("db", Status.STOPPED, pm_id=1, instance_var="INSTANCE_ID"),
             _info("日本", pm_id=2, args=["--x", "\u2028"], cwd="/srv/ü"),
             dataclasses.replace(_info("odd", pm_id=3, args=["\x00pmsd-runtime-0\x00"]), cpu_percent=12.0,
                                 exit_code=137, memory_bytes=2**40),
             dataclasses.replace(_info("web", pm_id=4, instances=3), record=dataclasses.replace(
                 make_record(pm_id=4, name="web", instances=3), instance=2, increment=7))]
    assert jlisttext.make_template(infos[3].record, True) is None
    for user in (True, False):
        jlisttext.warm([info.record for info in infos[:4]], user)  # not the last: encoded whole
        assert jlisttext.render_json(infos, user) == jlist.render_json(infos, user)
        assert all(jlisttext.kept_template(info.record, user) is not None for info in infos[:3])
    assert jlisttext.render_json([], True) == jlist.render_json([], True)
    jlisttext.warm([], True)


def test_god_keeps_the_templates_of_its_apps_only_and_a_changed_record_gets_a_new_one() -> None:
    first, second = make_record(pm_id=0, name="a"), make_record(pm_id=1, name="b")
    jlisttext.warm([first, second], True)
    kept = jlisttext.kept_template(first, True)
    assert kept is not None and jlisttext.kept_template(dataclasses.replace(first), True) is kept  # a copy
    jlisttext.warm([second], True)
    assert jlisttext.kept_template(first, True) is None
    renamed = dataclasses.replace(second, spec=dataclasses.replace(second.spec, namespace="other"))
    assert jlisttext.kept_template(renamed, True) is None
    jlisttext.warm([renamed], True)
    made = jlisttext.kept_template(renamed, True)
    assert made is not None and '"namespace": "other"' in made
    jlisttext.warm([], True)


def test_render_json_empty() -> None:
    assert json.loads(jlist.render_json([], user=True)) == []


# PM2 7's pm2_env keys (`pm2 jlist` of a fork app started with --interpreter python3) that have a meaning in
# pmsd; PM2's own machinery (vizion, pmx, automation, kill_retry_time, pm_pid_path, windowsHide, filter_env) has none.
PM2_KEYS = (
    "name", "namespace", "pm_id", "status", "restart_time", "unstable_restarts", "pm_uptime", "created_at",
    "exec_mode", "instances", "NODE_APP_INSTANCE", "instance_var", "pm_exec_path", "pm_cwd", "exec_interpreter",
    "node_args", "args", "exit_code", "autorestart", "autostart", "max_restarts", "min_uptime", "kill_timeout",
    "watch", "username", "unique_id", "version", "pm_out_log_path", "pm_err_log_path", "merge_logs", "treekill",
    "env", "axm_monitor", "axm_actions", "axm_options", "axm_dynamic",
)


def test_render_json_has_every_pm2_key_with_a_meaning() -> None:
    [entry] = json.loads(jlist.render_json([_info()], user=True))
    assert set(entry) >= {"pid", "name", "pm_id", "monit", "pm2_env"}
    assert [key for key in PM2_KEYS if key not in entry["pm2_env"]] == []


def test_render_json_definition_values() -> None:
    info = _info(args=("--port", "1"), interpreter_args=("--max-old-space-size=64",), autorestart=False,
                 max_restarts=5, min_uptime=2500, kill_timeout=3000, env={"NODE_ENV": "production"},
                 watch=("/srv/app",), namespace="jobs")
    env = json.loads(jlist.render_json([info], user=True))[0]["pm2_env"]
    assert env["args"] == ["--port", "1"]
    assert env["node_args"] == env["interpreter_args"] == ["--max-old-space-size=64"]
    assert (env["autorestart"], env["max_restarts"], env["min_uptime"], env["kill_timeout"]) == (False, 5, 2500, 3000)
    assert env["env"] == {"NODE_ENV": "production"}
    assert env["watch"] == ["/srv/app"]
    assert env["namespace"] == "jobs"
    assert env["version"] == "N/A"
    assert env["treekill"] is True and env["merge_logs"] is True  # PM2 7: true for a single fork app
    assert (env["axm_monitor"], env["axm_actions"]) == ({}, [])


def test_render_json_unwatched_app_has_watch_false() -> None:
    env = json.loads(jlist.render_json([_info()], user=True))[0]["pm2_env"]
    assert env["watch"] is False
    assert env["NODE_APP_INSTANCE"] == 0


@pytest.mark.parametrize(("spec", "paths"), [
    pytest.param({}, (None, None, None), id="journal"),
    pytest.param({"out_file": "/l/o.log"}, ("/l/o.log", None, None), id="out-only"),
    pytest.param({"out_file": "/l/o.log", "error_file": "/l/e.log"}, ("/l/o.log", "/l/e.log", None), id="both"),
    pytest.param({"log_file": "/l/all.log"}, ("/l/all.log", "/l/all.log", "/l/all.log"), id="log-file"),
    pytest.param({"log_file": "/l/all.log", "error_file": "/l/e.log"}, (None, "/l/e.log", None),
                 id="log-file-ignored-next-to-error-file"),
    pytest.param({"disable_logs": True, "out_file": "/l/o.log"}, ("/dev/null", "/dev/null", None), id="disabled"),
])
def test_render_json_log_paths(spec: dict[str, Any], paths: tuple[str | None, ...]) -> None:
    env = json.loads(jlist.render_json([_info(**spec)], user=True))[0]["pm2_env"]
    assert (env["pm_out_log_path"], env["pm_err_log_path"], env["pm_log_path"]) == paths


def test_render_json_cluster_instance() -> None:
    base = _info(exec_mode="cluster", instances=4, instance_var="WORKER", pm_id=7)
    info = dataclasses.replace(base, record=dataclasses.replace(base.record, instance=2))
    env = json.loads(jlist.render_json([info], user=True))[0]["pm2_env"]
    assert (env["exec_mode"], env["instances"], env["pm_id"]) == ("cluster_mode", 4, 7)
    assert env["NODE_APP_INSTANCE"] == 2 and env["WORKER"] == 2 and env["instance_var"] == "WORKER"


def test_render_json_username() -> None:
    assert json.loads(jlist.render_json([_info(user="www-data")], user=False))[0]["pm2_env"]["username"] == "www-data"
    assert json.loads(jlist.render_json([_info()], user=False))[0]["pm2_env"]["username"] == "root"
    me = pwd.getpwuid(os.getuid()).pw_name
    assert json.loads(jlist.render_json([_info()], user=True))[0]["pm2_env"]["username"] == me


# ------------------------------------------------------------------------------------------ describe


def _describe_rows(info: ProcessInfo) -> dict[str, str]:
    text = describe.render(info, NOW_MS, True, "[Service]\nExecStart=/bin/true\n", ["journal"])
    rows = {}
    for line in text.splitlines()[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            key, _, value = line.strip().partition("  ")
            rows[key] = value.strip()
    return rows


def test_describe_has_pm2s_rows() -> None:
    rows = _describe_rows(_info(out_file="/l/o.log", env={"NODE_ENV": "production"}))
    assert rows["status"] == "online" and rows["name"] == "api" and rows["version"] == "N/A"
    assert rows["out log path"] == "/l/o.log"
    assert rows["error log path"].startswith("- (the journal")
    assert rows["node env"] == "production"
    assert rows["exec mode"] == "fork_mode"
    assert rows["restarts"] == "3" and rows["unstable restarts"] == "2"


# ------------------------------------------------------------------------------------------ prettylist


def test_render_pretty_looks_like_util_inspect() -> None:
    text = jlist.render_pretty([_info()], user=True)
    assert "status: 'online'" in text
    assert "name: 'api'" in text
    assert "exit_code: null" in text
    assert "autorestart: true" in text


def test_render_pretty_escapes_quotes_in_names() -> None:
    text = jlist.render_pretty([_info("it's \"quoted\"")], user=True)
    assert "name: 'it\\'s \"quoted\"'" in text


@pytest.mark.parametrize(("value", "literal"), [
    ("plain", "'plain'"), ("it's", "'it\\'s'"), ('say "hi"', "'say \"hi\"'"), ("back\\slash", "'back\\\\slash'"),
    ("a\\'b", "'a\\\\\\'b'"), ("new\nline", "'new\\nline'"), ("日本", "'日本'"), ("", "''"),
])
def test_js_string_literals(value: str, literal: str) -> None:
    assert jlist.js_literal(value) == literal


def test_js_literal_quotes_keys_that_are_not_identifiers() -> None:
    assert jlist.js_literal({"ok_key": 1, "not-an-id": 2, "$x": 3}) == "{\n  ok_key: 1,\n  'not-an-id': 2,\n  $x: 3\n}"
    assert jlist.js_literal([]) == "[]"
    assert jlist.js_literal({}) == "{}"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_render_pretty_is_a_javascript_value_equal_to_jlist() -> None:
    infos = [_info("it's \"q\" \\ `x` ${y} 日本\u2028", pm_id=0, args=("a'b",), env={"K": "v"}),
             _info("b", Status.STOPPED, pm_id=1)]
    script = ("let s = ''; process.stdin.on('data', (d) => { s += d; })"
              ".on('end', () => process.stdout.write(JSON.stringify(eval('(' + s + ')'))));")
    result = subprocess.run(["node", "-e", script], input=jlist.render_pretty(infos, user=True), capture_output=True,
                            text=True, timeout=30, check=True)
    assert json.loads(result.stdout) == json.loads(jlist.render_json(infos, user=True))
