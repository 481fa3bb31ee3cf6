"""PM2's target grammar (pmsd.api.targets) over registry data built in memory, and PM2's restart counting."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pmsd.api import launch
from pmsd.api.targets import names_of, resolve_targets
from pmsd.errors import ExitStatus, NotFoundError, PmsdError, UsageError
from pmsd.model.record import AppRecord, RegistryData
from tests.unit.helpers import make_record, make_state


def _app(pm_id: int, name: str, namespace: str = "default", script: str | None = None,
         instance: int | None = None) -> AppRecord:
    record = make_record(pm_id=pm_id, name=name, namespace=namespace, script=script or f"/srv/app/{name}.py")
    record.instance = instance
    return record


@pytest.fixture
def data() -> RegistryData:
    return RegistryData(next_id=9, apps=[
        _app(0, "api", "web"),
        _app(1, "worker", "jobs", script="/srv/app/worker.py"),
        _app(2, "cron", "jobs", script="/srv/app/worker.py"),
        _app(3, "web", "front"),
        _app(5, "cl", "front", instance=1),
        _app(4, "cl", "front", instance=0),
        _app(8, "jobs-admin", "admin"),
    ])


def ids(records: list[AppRecord]) -> list[int]:
    return [record.pm_id for record in records]


def test_all_is_every_app_by_id(data: RegistryData) -> None:
    assert ids(resolve_targets(data, "all")) == [0, 1, 2, 3, 4, 5, 8]
    assert resolve_targets(RegistryData(), "all") == []  # each command says what nothing means


def test_id_name_and_instances(data: RegistryData) -> None:
    assert ids(resolve_targets(data, "3")) == [3]
    assert ids(resolve_targets(data, "api")) == [0]
    assert ids(resolve_targets(data, "cl")) == [4, 5]  # instance order


def test_name_wins_over_namespace_and_namespace_is_the_fallback(data: RegistryData) -> None:
    assert ids(resolve_targets(data, "web")) == [3]  # the app "web", not namespace "web" (app 0)
    assert ids(resolve_targets(data, "jobs")) == [1, 2]
    assert ids(resolve_targets(data, "front")) == [3, 4, 5]


def test_an_app_named_like_an_id_wins_over_the_id(data: RegistryData) -> None:
    # PM2's _operate: for a number, getProcessIdByName first, the id only when no app has that name.
    data.apps.append(_app(455, "455"))
    data.apps.append(_app(7, "seven"))
    assert ids(resolve_targets(data, "455")) == [455]
    assert ids(resolve_targets(data, "7")) == [7]


def test_unknown_words_and_ids(data: RegistryData) -> None:
    with pytest.raises(NotFoundError, match="no app with id 42"):
        resolve_targets(data, "42")
    with pytest.raises(NotFoundError, match="no app, id or namespace named 'nobody'") as caught:
        resolve_targets(data, "nobody")
    assert caught.value.status == ExitStatus.NOT_FOUND


@pytest.mark.parametrize(("regex", "expected"), [
    ("/^c/", [2, 4, 5]),
    ("/ob/", [8]),  # a search anywhere in the name, as JavaScript's regex.test
    ("/er/", [1]),
    ("/^(api|web)$/", [0, 3]),
    ("//", [0, 1, 2, 3, 4, 5, 8]),
])
def test_regex_searches_names(data: RegistryData, regex: str, expected: list[int]) -> None:
    assert ids(resolve_targets(data, regex)) == expected


def test_a_regex_matching_nothing_is_not_found(data: RegistryData) -> None:
    with pytest.raises(NotFoundError, match=r"no app name matches /\^zzz/"):
        resolve_targets(data, "/^zzz/")


def test_an_invalid_regex_is_a_usage_error_naming_it(data: RegistryData) -> None:
    with pytest.raises(UsageError, match=r"invalid regular expression /a\(/") as caught:
        resolve_targets(data, "/a(/")
    assert caught.value.status == ExitStatus.USAGE


def test_script_path_from_the_cwd(data: RegistryData) -> None:
    assert ids(resolve_targets(data, "worker.py", cwd="/srv/app")) == [1, 2]
    assert ids(resolve_targets(data, "../app/worker.py", cwd="/srv/other")) == [1, 2]
    assert ids(resolve_targets(data, "/srv/app/worker.py")) == [1, 2]
    with pytest.raises(NotFoundError, match=r"no app, id or namespace named 'gone\.py'"):
        resolve_targets(data, "gone.py", cwd="/srv/app")


def test_a_name_and_its_script_together(data: RegistryData) -> None:
    # PM2's getProcessIdByName matches the name or the resolved script path in one pass.
    data.apps.append(_app(9, "worker.py", script="/elsewhere/x.py"))
    assert ids(resolve_targets(data, "worker.py", cwd="/srv/app")) == [9, 1, 2]


def _ecosystem(tmp_path: Path, apps: list[dict[str, Any]]) -> str:
    path = tmp_path / "ecosystem.json"
    path.write_text(json.dumps({"apps": apps}))
    return str(path)


def test_ecosystem_file_means_its_registered_apps(data: RegistryData, tmp_path: Path) -> None:
    path = _ecosystem(tmp_path, [{"name": "web", "script": "web.py"}, {"script": "/x/api.js"},
                                 {"name": "not-started", "script": "n.py"}])
    assert ids(resolve_targets(data, path)) == [3, 0]  # file order; the unnamed app is named by its script
    assert ids(resolve_targets(data, path, only=["api"])) == [0]


def test_ecosystem_file_relative_to_the_cwd(data: RegistryData, tmp_path: Path) -> None:
    _ecosystem(tmp_path, [{"name": "cl", "script": "cl.py"}])
    assert ids(resolve_targets(data, "ecosystem.json", cwd=str(tmp_path))) == [4, 5]


def test_ecosystem_file_errors(data: RegistryData, tmp_path: Path) -> None:
    path = _ecosystem(tmp_path, [{"name": "web", "script": "web.py"}, {"name": "other", "script": "o.py"}])
    with pytest.raises(NotFoundError, match=r"has no app named nope \(--only\)"):
        resolve_targets(data, path, only=["nope"])
    with pytest.raises(NotFoundError, match=r"none of the apps of .* is registered \(other\)"):
        resolve_targets(data, path, only=["other"])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UsageError):
        resolve_targets(data, str(tmp_path / "broken.json"))


def test_several_targets_are_the_union_in_order_each_once(data: RegistryData) -> None:
    assert ids(resolve_targets(data, ["web", "api", "3", "/^c/", "front"])) == [3, 0, 2, 4, 5]
    assert ids(resolve_targets(data, ("jobs",))) == [1, 2]
    assert ids(resolve_targets(data, ["api", "all"])) == [0, 1, 2, 3, 4, 5, 8]


def test_several_targets_refuse_any_bad_one(data: RegistryData) -> None:
    with pytest.raises(NotFoundError, match="'nobody'"):
        resolve_targets(data, ["api", "nobody"])
    with pytest.raises(UsageError, match="invalid regular expression"):
        resolve_targets(data, ["api", "/[/"])
    with pytest.raises(UsageError, match="no target given"):
        resolve_targets(data, [])


# ------------------------------------------------------------------------------------------ restart counting


class _Manager:
    def __init__(self, state: Any) -> None:
        self.state = state

    def service_state(self, unit: str) -> Any:
        return self.state


@pytest.mark.parametrize(("state", "expected"), [
    pytest.param(make_state(n_restarts=2), 3, id="online: counts, with the unit's own restarts"),
    pytest.param(make_state(active_state="activating", sub_state="start"), 1, id="launching: counts"),
    pytest.param(None, 0, id="stopped: just started"),
    pytest.param(make_state(active_state="failed", sub_state="failed", result="start-limit-hit", n_restarts=3),
                 3, id="errored: just started, its crash restarts kept"),
    pytest.param(make_state(active_state="activating", sub_state="auto-restart", n_restarts=1), 1,
                 id="waiting restart: just started"),
])
def test_only_a_restart_of_a_running_app_counts(monkeypatch: pytest.MonkeyPatch, state: Any,
                                                expected: int) -> None:
    # PM2's God.restartProcessId (lib/God/ActionMethods.js): restart_time += 1 only when online or launching.
    calls: list[str] = []
    monkeypatch.setattr(launch, "write_environment", lambda ctx, record, fresh: calls.append("env"))
    monkeypatch.setattr(launch, "stop_and_collect", lambda manager, unit, timeout: calls.append("stop"))
    monkeypatch.setattr(launch, "launch_many", lambda ctx, records: calls.append("launch"))
    record = make_record(restart_offset=0)
    ctx: Any = SimpleNamespace(manager=_Manager(state))
    launch.restart_record(ctx, record, update_env=False)
    assert record.restart_offset == expected
    assert calls == ["env", "stop", "launch"]


def test_errors_are_pmsd_errors() -> None:
    assert issubclass(NotFoundError, PmsdError) and issubclass(UsageError, PmsdError)


@pytest.mark.parametrize(("raw", "env_name", "expected"), [
    ({"name": "api", "script": "a.js"}, None, "api"),
    ({"exec": "srv/worker.py"}, None, "worker"),  # PM2's alias of script
    ({"cmd": "srv/w.js", "script": "srv/main.js"}, None, "main"),  # the key's own spelling wins
    ({"name": "api", "append_env_to_name": True}, "production", "api-production"),
    ({"name": "api", "appendEnvToName": "true"}, "production", "api-production"),
    ({"name": "api", "append_env_to_name": True}, None, "api"),
    ({"name": "api", "append_env_to_name": "sometimes"}, "production", "api"),  # start reports the bad value
    ({"args": "x"}, None, ""),
])
def test_names_of_a_files_apps_as_build_spec_names_them(raw: dict[str, object], env_name: str | None,
                                                        expected: str) -> None:
    assert names_of([raw], "eco.json", env_name=env_name) == ((expected,) if expected else ())
