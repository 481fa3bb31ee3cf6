"""Issue 12's remainders, in-process: `-` (a JSON definition on stdin) as a target, restart/reload flags that change
an app's definition (--name, --node-args, --env), and `reload <ecosystem file>`. systemd is never reached: the
steps of pmsd.api.launch that would reach it are recorded instead."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

import pmsd.api.lifecycle as lifecycle
from pmsd.api import cluster
from pmsd.api.lifecycle import Outcome
from pmsd.api.targets import STDIN, parse_targets, read_stdin_apps, resolve_targets
from pmsd.context import Context
from pmsd.definition.build import build_spec
from pmsd.errors import ExitStatus, NotFoundError, UsageError
from pmsd.model.record import AppRecord
from pmsd.model.spec import COMMAND_LINE, AppSpec, Source
from pmsd.state.registry import Registry
from tests.unit.cli_harness import NO_SYSTEMD, Env, run
from tests.unit.helpers import SYSTEM_PATH, make_state

USAGE = ExitStatus.USAGE


class Unreadable(io.StringIO):
    def read(self, size: int | None = -1) -> str:
        raise OSError(5, "Input/output error")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def closed() -> io.StringIO:
    stream = io.StringIO("{}")
    stream.close()
    return stream


# ------------------------------------------------------------------------------------------ stdin


@pytest.mark.parametrize(("text", "names"), [
    ('{"apps": [{"name": "a", "script": "x"}, {"name": "b", "script": "y"}]}', ["a", "b"]),
    ('[{"name": "a", "script": "x"}]', ["a"]),
    ('{"name": "a", "script": "x"}\n', ["a"]),
])
def test_stdin_holds_apps_as_an_ecosystem_file_does(text: str, names: list[str]) -> None:
    assert [app["name"] for app in read_stdin_apps(io.StringIO(text))] == names


@pytest.mark.parametrize(("stream", "message"), [
    (io.StringIO(""), "stdin is empty"),
    (io.StringIO("  \n"), "stdin is empty"),
    (io.StringIO('{"apps": [\n  {"name": }]}'), "stdin:2:12: invalid JSON: Expecting value"),
    (io.StringIO('{"apps": []}'), "stdin: declares no apps"),
    (io.StringIO("3"), "stdin: expected {apps: [...]}, an app, or a list of apps"),
    (Terminal("{}"), "which is a terminal"),
    (Unreadable("{}"), "cannot read the app definition from stdin: [Errno 5] Input/output error"),
    (closed(), "which is closed"),
], ids=["empty", "blank", "bad-json", "no-apps", "not-apps", "tty", "unreadable", "closed"])
def test_bad_stdin_is_a_usage_error(stream: io.StringIO, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        read_stdin_apps(stream)
    assert message in caught.value.message
    assert caught.value.status == USAGE and "cat apps.json | pmsd start -" in str(caught.value.hint)


def test_stdin_as_a_target_means_its_apps(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "a"), spec_record(env, 1, "b"))
    data = Registry(str(env.state)).read()
    apps = [{"name": "b", "script": "tool"}, {"name": "gone", "script": "tool"}]
    targets = parse_targets(["a", STDIN], stdin=apps)
    assert [(t.kind, t.names) for t in targets] == [("word", ()), ("ecosystem", ("b", "gone"))]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"apps": apps})))
    assert [r.name for r in resolve_targets(data, STDIN)] == ["b"]
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"name": "gone", "script": "tool"}'))
    with pytest.raises(NotFoundError, match="none of the apps of stdin is registered"):
        resolve_targets(data, STDIN)


@pytest.mark.parametrize("prefix", [[], ["--user"]], ids=["fast", "typer"])
@pytest.mark.parametrize("verb", ["start", "stop", "restart", "delete"])
def test_bad_stdin_changes_nothing(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                   verb: str, prefix: list[str]) -> None:
    seed(env, spec_record(env, 0, "a"))
    before = apps(env)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"apps": [{"name": "a",}]}'))
    result = run(capsys, *prefix, verb, "-")
    assert result.status == USAGE, result.err
    # Python 3.13 words it "Illegal trailing comma" (column 23), 3.11 "Expecting property name" (column 24).
    assert result.err.startswith("[pmsd][ERROR] stdin:1:2") and "invalid JSON" in result.err
    assert NO_SYSTEMD not in result.err
    assert apps(env) == before


def test_start_from_stdin_creates_and_restarts_declared_apps(env: Env, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "old"))
    calls = record_steps(monkeypatch)
    monkeypatch.setattr(lifecycle, "_create", fake_create(calls, with_cwd=True))
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"apps": [
        {"name": "old", "script": "tool", "env": {"A": "1"}}, {"name": "new", "script": "tool"}]})))
    outcomes = lifecycle.start(Context(user=True), "-")
    assert [(o.action, o.name) for o in outcomes] == [("restarted", "old"), ("started", "new")]
    assert ("create", "new", str(env.app)) in calls
    assert Registry(str(env.state)).read().by_name("old").spec.env == {"A": "1"}  # type: ignore[union-attr]


def test_a_bad_app_on_stdin_names_stdin(env: Env, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"name": "x", "script": "tool", "max_restarts": "many"}'))
    result = run(capsys, "start", "-")
    assert result.status == USAGE
    assert result.err.startswith("[pmsd][ERROR] stdin: app 'x', key 'max_restarts'")
    assert not Registry(str(env.state)).read().apps


def test_restart_from_stdin_gives_registered_apps_its_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "a", env={"A": "1", "B": "1"}), spec_record(env, 1, "b"))
    calls = record_steps(monkeypatch)
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps([
        {"name": "a", "script": "tool", "env": {"A": "2"}, "env_prod": {"P": "1"}},
        {"name": "missing", "script": "tool"}])))
    outcomes = lifecycle.restart(Context(user=True), "-", env_name="prod")
    assert [(o.action, o.name) for o in outcomes] == [("restarted", "a")]  # PM2's actionFromJson: no start
    assert calls == [("restart", "a", False)]
    assert Registry(str(env.state)).read().by_name("a").spec.env == {"A": "2", "P": "1"}  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ restart flags


def spec_record(where: Env, pm_id: int, name: str, instance: int | None = None, **raw: Any) -> AppRecord:
    spec = build_spec({"script": "tool", "name": name, **raw}, Source(COMMAND_LINE, str(where.app)), None,
                      SYSTEM_PATH, [])
    return AppRecord(pm_id=pm_id, spec=spec, created_at=1_700_000_000_000, instance=instance)


def seed(env: Env, *records: AppRecord) -> None:
    with Registry(str(env.state)).transaction() as data:
        data.apps.extend(records)
        data.next_id = max(record.pm_id for record in records) + 1


def apps(env: Env) -> list[tuple[int, int | None, Any]]:
    return [(record.pm_id, record.instance, record.spec) for record in Registry(str(env.state)).read().apps]


class Manager:
    version = 252

    def service_state(self, unit: str, **_: Any) -> Any:
        return make_state(name=unit)

    def close(self) -> None:
        pass


def record_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The launch steps lifecycle takes, recorded instead of reaching systemd."""
    calls: list[tuple[Any, ...]] = []
    manager = Manager()
    monkeypatch.setattr(Context, "manager", property(lambda self: manager))
    monkeypatch.setattr(lifecycle, "restart_record",
                        lambda ctx, record, update_env: calls.append(("restart", record.name, update_env)))
    monkeypatch.setattr(lifecycle, "stop_record", lambda ctx, record: calls.append(("stop", record.name)))
    monkeypatch.setattr(lifecycle, "launch_many", lambda ctx, records: calls.append(
        ("launch", *[r.name for r in records])))
    monkeypatch.setattr(lifecycle, "remove_cron", lambda ctx, name: calls.append(("uncron", name)))
    monkeypatch.setattr(lifecycle, "write_environment", lambda ctx, record, fresh: None)
    # new fork apps of a file start together (lifecycle._start_specs): recorded as their creation

    def launch_fork_apps(ctx: Context, records: list[AppRecord]) -> list[tuple[AppRecord, Exception]]:
        calls.extend(("create", record.name, record.spec.cwd) for record in records)
        return []

    monkeypatch.setattr(lifecycle, "launch_fork_apps", launch_fork_apps)

    def reload_app(ctx: Context, data: object, name: str, group: list[AppRecord], update_env: bool) -> list[Outcome]:
        calls.append(("reload", name, update_env))
        return [Outcome("reloaded", record.pm_id, name) for record in group]

    monkeypatch.setattr(lifecycle, "_reload_app", reload_app)
    return calls


def fake_create(calls: list[tuple[Any, ...]], with_cwd: bool = False) -> Any:
    def create(ctx: Context, data: object, spec: AppSpec) -> list[Outcome]:
        calls.append(("create", spec.name, spec.cwd) if with_cwd else ("create", spec.name))
        return [Outcome("started", 1, spec.name)]

    return create


def test_restart_name_renames_the_app(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "old"), spec_record(env, 1, "other"))
    calls = record_steps(monkeypatch)
    outcomes = lifecycle.restart(Context(user=True), "0", overrides={"name": "new"})
    assert [(o.action, o.pm_id, o.name) for o in outcomes] == [("restarted", 0, "new")]
    assert calls == [("stop", "old"), ("uncron", "old"), ("launch", "new")]
    data = Registry(str(env.state)).read()
    record = data.by_id(0)
    assert record is not None and record.name == "new" and record.unit == "pmsd-new.service"
    assert record.restart_offset == 1  # a running app was restarted: it counts, as in PM2
    assert data.by_name("old") is None


def test_reload_name_renames_the_app(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "old"))
    calls = record_steps(monkeypatch)
    assert [o.action for o in lifecycle.reload(Context(user=True), "old", overrides={"name": "new"})] == ["reloaded"]
    assert calls[-1] == ("launch", "new")


@pytest.mark.parametrize(("targets", "records", "message"), [
    (["all"], [("a", None), ("b", None)], "--name renames one app, and the targets mean 2: a, b"),
    (["a"], [("a", None), ("b", None)], "--name b: an app of that name exists (id 1)"),
    (["c"], [("c", 0), ("c", 1)], "--name: app 'c' runs as instances, which restart cannot rename"),
], ids=["several", "taken", "cluster"])
def test_a_rename_that_cannot_be_done_changes_nothing(env: Env, monkeypatch: pytest.MonkeyPatch,
                                                      targets: list[str], records: list[tuple[str, int | None]],
                                                      message: str) -> None:
    seed(env, *[spec_record(env, pm_id, name, instance) for pm_id, (name, instance) in enumerate(records)])
    before = apps(env)
    calls = record_steps(monkeypatch)
    new = "b" if message.startswith("--name b") else "z"
    with pytest.raises(UsageError) as caught:
        lifecycle.restart(Context(user=True), targets, overrides={"name": new})
    assert caught.value.message == message
    assert calls == []
    assert apps(env) == before


def test_node_args_replace_and_null_removes_them(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "a", interpreter_args=["--one"], interpreter="none"))
    calls = record_steps(monkeypatch)
    ctx = Context(user=True)
    lifecycle.restart(ctx, "a", overrides={"interpreter_args": "--two --three"})
    spec = Registry(str(env.state)).read().apps[0].spec
    assert spec.interpreter_args == ("--two", "--three")
    lifecycle.reload(ctx, "a", overrides={"node_args": "null"})
    spec = Registry(str(env.state)).read().apps[0].spec
    assert spec.interpreter_args == () and spec.name == "a" and spec.script.endswith("/tool")
    assert calls == [("restart", "a", False), ("reload", "a", False)]


def test_a_bad_override_is_refused_before_any_effect(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "a"))
    calls = record_steps(monkeypatch)
    with pytest.raises(UsageError, match=r"^--name: "):
        lifecycle.restart(Context(user=True), "a", overrides={"name": "all"})
    assert calls == []
    assert Registry(str(env.state)).read().apps[0].name == "a"


def test_env_without_an_ecosystem_file_is_refused_as_in_pm2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    seed(env, spec_record(env, 0, "a"))
    for verb in ("restart", "reload"):
        result = run(capsys, verb, "a", "--env", "production")
        assert result.status == USAGE
        assert result.err.startswith("[pmsd][ERROR] --env production: env_production is read from an ecosystem "
                                     "file, and 'a' is not one")


def test_restart_flags_reach_the_api(env: Env, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, object, dict[str, object]]] = []

    def fake(verb: str) -> Any:
        def call(ctx: Context, target: object, **kwargs: object) -> list[Outcome]:
            seen.append((verb, target, kwargs))
            return []
        return call

    monkeypatch.setattr(lifecycle, "restart", fake("restart"))
    monkeypatch.setattr(lifecycle, "reload", fake("reload"))
    monkeypatch.setattr("pmsd.cli.commands.ls", lambda ctx, **_: 0)
    assert run(capsys, "restart", "0", "--name", "x", "--node-args=null", "--watch", "-s").status == 0
    assert run(capsys, "reload", "eco.json", "--env", "prod", "--only", "a,b", "--interpreter-args", "-u").status == 0
    assert seen == [
        ("restart", "0", {"update_env": False, "toggle_watch": True, "env_name": None, "only": (),
                          "overrides": {"name": "x", "interpreter_args": "null"}}),
        ("reload", "eco.json", {"update_env": False, "env_name": "prod", "only": ("a", "b"),
                                "overrides": {"interpreter_args": "-u"}}),
    ]


# ------------------------------------------------------------------------------------------ reload <file>


def test_reload_of_an_ecosystem_file_starts_missing_apps_and_reloads_the_others(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    (env.app / "eco.json").write_text(json.dumps({"apps": [
        {"name": "old", "script": "./tool", "env": {"A": "2"}, "max_restarts": 3},
        {"name": "new", "script": "./tool"}]}))
    seed(env, spec_record(env, 0, "old", env={"A": "1"}))
    calls = record_steps(monkeypatch)
    monkeypatch.setattr(lifecycle, "_create", fake_create(calls))
    outcomes = lifecycle.reload(Context(user=True), "eco.json")
    assert [(o.action, o.name) for o in outcomes] == [("reloaded", "old"), ("started", "new")]
    assert calls == [("reload", "old", True), ("create", "new")]
    spec = Registry(str(env.state)).read().by_name("old").spec  # type: ignore[union-attr]
    assert spec.env == {"A": "2"} and spec.max_restarts == 16  # PM2 takes the file's env only


def test_start_or_reload_is_reload_of_the_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from pmsd.api.start_or import start_or

    (env.app / "eco.json").write_text('{"apps": [{"name": "x", "script": "./tool"}]}')
    seen: list[tuple[object, dict[str, object]]] = []

    def fake_reload(ctx: Context, target: object, **kwargs: object) -> list[Outcome]:
        seen.append((target, kwargs))
        return []

    monkeypatch.setattr(lifecycle, "reload", fake_reload)
    assert start_or(Context(user=True), "eco.json", "reload", lifecycle.StartOptions(env_name="p")) == []
    assert seen == [("eco.json", {"update_env": False, "only": (), "env_name": "p", "overrides": {}})]
    with pytest.raises(NotFoundError):
        start_or(Context(user=True), "eco.json", "reload", lifecycle.StartOptions(only=("nope",)))
    assert len(seen) == 1


def test_stop_and_delete_from_stdin(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, spec_record(env, 0, "a"), spec_record(env, 1, "b"))
    calls = record_steps(monkeypatch)
    monkeypatch.setattr(lifecycle, "forget", lambda ctx, data, record: data.apps.remove(record))
    monkeypatch.setattr(cluster, "remove_app_units", lambda ctx, name: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"name": "b", "script": "tool"}'))
    assert [o.name for o in lifecycle.stop(Context(user=True), "-")] == ["b"]
    monkeypatch.setattr(sys, "stdin", io.StringIO('[{"name": "b", "script": "tool"}]'))
    assert [o.name for o in lifecycle.delete(Context(user=True), "-")] == ["b"]
    assert [r.name for r in Registry(str(env.state)).read().apps] == ["a"]
    assert calls == [("stop", "b"), ("stop", "b"), ("uncron", "b")]

