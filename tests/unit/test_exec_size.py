"""The size of an app's arguments and environment against what Linux executes (pmsd.definition.unitvalues
.exec_size_problem), and the launch path refusing an app that would not fit before anything of it exists: systemd
would create its unit and then fail to execute it with E2BIG (status 203/EXEC). systemd is never reached."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

import pmsd.api.launch
import pmsd.api.lifecycle
import pmsd.definition.settings
from pmsd.api.launch import check_exec_size, write_environment, write_environments
from pmsd.api.lifecycle import StartOptions, start
from pmsd.context import Context
from pmsd.definition.unitvalues import (
    ARG_MAX,
    EXEC_ENV_MARGIN,
    POINTER_SIZE,
    STK_LIM,
    exec_limit,
    exec_size,
    exec_size_problem,
)
from pmsd.errors import ExitStatus, UsageError
from pmsd.model.record import AppRecord, RegistryData
from pmsd.state.envfiles import read_env_file
from pmsd.state.registry import Registry
from tests.unit.helpers import SYSTEM_PATH, make_record

ROOM = exec_limit() - EXEC_ENV_MARGIN  # what pmsd lets an app's argv and env take under systemd's default stack
CHUNK = 100_000  # one variable's value: under MAX_ARG_STRLEN (128 KiB), which the kernel checks string by string


def filled(argv: list[str], size: int, base: dict[str, str] | None = None, program: str | None = None
           ) -> dict[str, str]:
    """`base` plus variables of at most CHUNK bytes, so that execve() of argv with them counts exactly `size`."""
    env = dict(base or {})
    index = 0
    while size - exec_size(argv, {**env, "LAST": ""}, program) > CHUNK:
        env[f"FILL{index:03d}"] = "x" * (CHUNK - len(f"FILL{index:03d}=") - 1 - POINTER_SIZE)
        index += 1
    env["LAST"] = "y" * (size - exec_size(argv, {**env, "LAST": ""}, program))
    assert exec_size(argv, env, program) == size
    return env


# ------------------------------------------------------------------------------------------ the computation


def test_the_limit_is_a_quarter_of_the_stack_limit_between_arg_max_and_three_quarters_of_stk_lim() -> None:
    # bprm_stack_limits() in fs/exec.c
    assert exec_limit() == exec_limit(STK_LIM) == 2 * 1024 * 1024
    assert exec_limit(64 * 1024 * 1024) == exec_limit(resource.RLIM_INFINITY) == 6 * 1024 * 1024
    assert exec_limit(16 * 1024) == ARG_MAX == 128 * 1024


def test_each_string_counts_its_bytes_its_nul_and_its_pointer() -> None:
    # the program's path is copied too (copy_string_kernel of the file name), without a pointer
    assert exec_size(["/bin/x", "é"], {"A": "1"}) == (7 + 7) + 3 + 4 + 3 * POINTER_SIZE
    assert exec_size(["x"], {}, program="/bin/x") == 7 + 2 + POINTER_SIZE
    assert exec_size([], {}) == 1 + POINTER_SIZE  # argc 0 still reserves one pointer (the kernel adds argv[0])


def test_one_byte_under_the_room_passes_and_one_over_is_refused() -> None:
    argv = ["/usr/bin/python3", "/srv/app/main.py", "--flag"]
    assert exec_size_problem(argv, filled(argv, ROOM - 1)) is None
    assert exec_size_problem(argv, filled(argv, ROOM)) is None
    problem = exec_size_problem(argv, filled(argv, ROOM + 1))
    assert problem is not None
    assert f"come to {ROOM + 1:,} bytes" in problem and f"more than the {ROOM:,} bytes pmsd allows" in problem
    assert f"at most {exec_limit():,}" in problem and "8 MiB" in problem and "203/EXEC" in problem
    assert "the largest: 'FILL000'" in problem


def test_a_smaller_stack_limit_leaves_less_room() -> None:
    argv = ["/bin/app"]
    env = filled(argv, 300_000)
    assert exec_size_problem(argv, env) is None
    problem = exec_size_problem(argv, env, stack_rlimit=1024 * 1024)
    assert problem is not None and "1 MiB" in problem and f"at most {256 * 1024:,}" in problem


def test_undecodable_caller_bytes_are_counted_not_raised() -> None:
    assert exec_size(["/bin/x"], {"A": "\udcff"}) == 7 + 7 + len("A=") + 3 + 1 + 2 * POINTER_SIZE


@pytest.mark.skipif(shutil.which("true") is None, reason="no true(1) to execute")
def test_the_kernel_agrees_to_the_byte() -> None:
    """exec_limit() is what this kernel's execve() takes under an 8 MiB stack limit: exactly that much runs, one
    byte more is E2BIG. The child gets the limit systemd gives apps, whatever this process has."""
    hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
    if hard != resource.RLIM_INFINITY and hard < STK_LIM:
        pytest.skip("the hard stack limit is below 8 MiB")

    def run(env: dict[str, str]) -> int:
        try:
            return subprocess.run(argv, env=env, check=False, preexec_fn=lambda: resource.setrlimit(
                resource.RLIMIT_STACK, (STK_LIM, hard))).returncode
        except OSError as error:
            return -(error.errno or 0)

    argv = [str(shutil.which("true")), "argument"]
    assert run(filled(argv, exec_limit())) == 0
    assert run(filled(argv, exec_limit() + 1)) == -errno.E2BIG


# ------------------------------------------------------------------------------------------ the launch path


def _ctx(tmp_path: Path, **environ: str) -> Context:
    base = {"PATH": SYSTEM_PATH, "PMSD_NO_GOD": "1", "XDG_RUNTIME_DIR": str(tmp_path)}
    return Context(user=True, environ={**base, **environ}, state_dir=str(tmp_path / "state"))


def _big_caller(total: int = ROOM + CHUNK) -> dict[str, str]:
    """A caller environment of about `total` bytes, in variables the kernel takes one by one."""
    return {f"BIG{index:03d}": "b" * (CHUNK - 16) for index in range(total // CHUNK + 1)}


def _env_files(ctx: Context) -> list[str]:
    return sorted(os.listdir(ctx.registry.env_dir)) if os.path.isdir(ctx.registry.env_dir) else []


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[list[AppRecord]]:
    """The records lifecycle asked to launch, recorded instead of reaching systemd."""
    calls: list[list[AppRecord]] = []
    monkeypatch.setattr(pmsd.api.lifecycle, "launch_many", lambda ctx, records: calls.append(records))
    return calls


@pytest.mark.parametrize("instances", [1, 2])
def test_start_refuses_a_too_big_app_before_anything_exists(tmp_path: Path, launched: list[list[AppRecord]],
                                                            instances: int) -> None:
    script = tmp_path / "main.py"
    script.write_text("print('hi')\n")
    ctx = _ctx(tmp_path, **_big_caller())
    with pytest.raises(UsageError) as caught:
        start(ctx, str(script), StartOptions(overrides={"instances": instances}))
    error = caught.value
    assert error.status == ExitStatus.USAGE
    assert error.message.startswith("app 'main'" + (" instance 0" if instances > 1 else "") + " cannot be started: ")
    assert f"more than the {ROOM:,} bytes pmsd allows" in error.message and "'BIG000'" in error.message
    assert error.hint is not None and "filter_env" in error.hint and "file" in error.hint
    assert launched == [] and _env_files(ctx) == []  # no unit asked for, no env file
    assert Registry(ctx.state_dir).read().apps == []  # no registry entry


def test_filter_env_lets_the_same_app_start(tmp_path: Path, launched: list[list[AppRecord]]) -> None:
    script = tmp_path / "main.py"
    script.write_text("print('hi')\n")
    ctx = _ctx(tmp_path, **_big_caller())
    outcomes = start(ctx, str(script), StartOptions(overrides={"filter_env": True}))
    assert [outcome.action for outcome in outcomes] == ["started"] and len(launched) == 1
    assert _env_files(ctx) == ["0.env"]


def test_a_restart_with_update_env_is_refused_and_keeps_the_stored_environment(tmp_path: Path) -> None:
    record = make_record(pm_id=3)
    write_environment(_ctx(tmp_path, SMALL="1"), record, fresh=True)
    grown = _ctx(tmp_path, **_big_caller())
    with pytest.raises(UsageError, match="app 'main' cannot be started: its arguments and environment come to"):
        write_environment(grown, record, fresh=True)  # restart_record's first step: nothing stopped yet
    assert read_env_file(grown.registry.record_env_file(record))["SMALL"] == "1"
    write_environment(grown, record, fresh=False)  # without --update-env the stored environment is kept: it fits


def test_new_instances_are_all_checked_before_any_file_is_written(tmp_path: Path) -> None:
    # The caller's environment fits instance 0 to the byte, and not instance 10 (pm_id and NODE_APP_INSTANCE are
    # a byte longer each): no instance gets its file.
    spec = make_record(instances=11).spec
    records = [AppRecord(pm_id=number, spec=spec, created_at=0, instance=number) for number in (0, 10)]
    pm2 = {"pm_id": "0", "name": "main", "namespace": "default", "NODE_APP_INSTANCE": "0"}
    app_env = filled(list(spec.argv), ROOM, {**_ctx(tmp_path).environ, **pm2, "PWD": spec.cwd}, spec.exec_path)
    ctx = _ctx(tmp_path, **{name: value for name, value in app_env.items() if name not in {*pm2, "PWD"}})
    with pytest.raises(UsageError, match=f"app 'main' instance 10 cannot be started: .* come to {ROOM + 2:,} "):
        write_environments(ctx, records, fresh=True)
    assert _env_files(ctx) == []
    write_environments(ctx, records[:1], fresh=True)
    assert _env_files(ctx) == [os.path.basename(ctx.registry.record_env_file(records[0]))]


def test_the_check_counts_what_the_unit_adds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ExecStart= as the app gets it (the Node preload's --require, "$" as written) and Environment= (PWD)."""
    preload = "/opt/pmsd/preload/node.js"
    monkeypatch.setattr(pmsd.definition.settings, "NODE_PRELOAD", preload)
    ctx = _ctx(tmp_path)
    record = make_record(interpreter="/usr/bin/node", exec_path="/usr/bin/node",
                         argv=("/usr/bin/node", "/srv/app/main.js", "$HOME"))
    argv = ["/usr/bin/node", "--require", preload, "/srv/app/main.js", "$HOME"]
    env = filled(argv, ROOM, {"PWD": "/srv/app"})
    env.pop("PWD")  # the unit's Environment= gives it
    check_exec_size(ctx, record, env)
    env["LAST"] += "y"
    with pytest.raises(UsageError, match=f"come to {ROOM + 1:,} bytes"):
        check_exec_size(ctx, record, env)



def _stops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The apps a command stopped, recorded instead of reaching systemd."""
    stopped: list[str] = []
    monkeypatch.setattr(pmsd.api.launch, "stop_record", lambda ctx, record: stopped.append(record.name))
    monkeypatch.setattr(pmsd.api.lifecycle, "stop_record", lambda ctx, record: stopped.append(record.name))
    return stopped


def test_a_rename_too_big_to_execute_is_refused_before_the_app_stops(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: `restart --name` stopped the app, then found its new environment too big, and left it
    stopped."""
    stopped = _stops(monkeypatch)
    record = make_record(pm_id=3)
    write_environment(_ctx(tmp_path, SMALL="1"), record, fresh=True)
    grown = _ctx(tmp_path, **_big_caller())
    with pytest.raises(UsageError, match="app 'renamed' cannot be started"):
        pmsd.api.lifecycle._rename(grown, record, replace(record.spec, name="renamed"), True, "restarted")
    assert stopped == [] and record.name == "main"


def test_a_switch_to_instances_too_big_to_execute_is_refused_before_the_app_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a fork app started again as instances (or scaled) was stopped before its environment was
    checked."""
    stopped = _stops(monkeypatch)
    record = make_record(pm_id=3)
    write_environment(_ctx(tmp_path, SMALL="1"), record, fresh=True)
    grown = _ctx(tmp_path, **_big_caller())
    data = RegistryData(next_id=4, apps=[record])
    with pytest.raises(UsageError, match="app 'main' cannot be started"):
        pmsd.api.launch.redefine(grown, data, [record], replace(record.spec, instances=2), update_env=True)
    assert stopped == [] and record.instance is None
    # without --update-env the stored environment goes on, and fits; instance 1 is new, made from the caller's
    with pytest.raises(UsageError, match="app 'main' instance 1 cannot be started"):
        pmsd.api.launch.redefine(grown, data, [record], replace(record.spec, instances=2))
    assert stopped == [] and record.instance is None
    small = _ctx(tmp_path, SMALL="2")
    assert [r.instance for r in pmsd.api.launch.redefine(small, data, [record], replace(record.spec, instances=2))
            ] == [0, 1] and stopped == ["main"]
