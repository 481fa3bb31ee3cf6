"""god running a CLI command for its caller (pmsd.god.runner, pmsd.cli.delegate), without systemd: when god
declines, descriptors passed with a request, and the forked child taking the caller's place."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pmsd import __version__
from pmsd.cli import delegate
from pmsd.context import Context
from pmsd.god import runner
from pmsd.god.handlers import ApiHandlers
from pmsd.god.loop import Loop
from pmsd.god.runner import PACKAGE_DIR, CommandRunner
from pmsd.model.protocol import decode, encode
from tests.unit.test_god_parts import _serving


def _params(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"argv": ["start", "--help"], "cwd": str(tmp_path), "umask": 0o022,
                              "env": {"PATH": os.environ.get("PATH", "/usr/bin"), "NO_COLOR": "1", "COLUMNS": "100",
                                      "XDG_STATE_HOME": str(tmp_path / "state")},
                              "encoding": "utf-8", "version": __version__, "package": PACKAGE_DIR,
                              "mounts": delegate.mount_namespace()}
    params.update(changes)
    return params


@pytest.fixture
def warm_runner() -> CommandRunner:
    command_runner = CommandRunner(Loop(), lambda _line: None, user=True)
    command_runner.warm()
    return command_runner


@pytest.mark.parametrize(("changes", "reason"), [
    ({"argv": ["delete", "all"]}, "god runs only short commands"),
    ({"argv": []}, "god runs only short commands"),
    ({"argv": ["logs", "api"]}, "god runs only short commands"),  # follows until Ctrl-C
    ({"argv": ["ls", "--watch"]}, "god runs only short commands"),
    ({"argv": ["start", "app.js", "--attach"]}, "god runs only short commands"),
    ({"version": "0.0.1"}, "another pmsd installation or version"),
    ({"package": "/elsewhere/pmsd"}, "another pmsd installation or version"),
    ({"cwd": None}, "cwd, env and umask are required"),
    ({"env": ["PATH=/bin"]}, "cwd, env and umask are required"),
    ({"mounts": "mnt:[1]"}, "another mount namespace"),  # PrivateTmp=, a container: other files
    ({"mounts": None}, "another mount namespace"),
])
def test_god_declines_what_could_turn_out_otherwise(tmp_path: Path, warm_runner: CommandRunner,
                                                    changes: dict[str, Any], reason: str) -> None:
    refusal = warm_runner.refusal(_params(tmp_path, **changes), [0, 1, 2])
    assert refusal is not None and reason in refusal
    assert warm_runner.refusal(_params(tmp_path), [0, 1, 2]) is None


def test_god_declines_without_the_callers_terminal_for_the_system_manager_and_with_a_thread(
        tmp_path: Path, warm_runner: CommandRunner) -> None:
    assert "stdin, stdout and stderr" in str(warm_runner.refusal(_params(tmp_path), [0, 1]))
    system = CommandRunner(Loop(), lambda _line: None, user=False)
    assert "system" in str(system.refusal(_params(tmp_path), [0, 1, 2]))
    release = threading.Event()
    rotation = threading.Thread(target=release.wait)  # as a log rotation finishing in god would be
    rotation.start()
    try:
        assert "thread" in str(warm_runner.refusal(_params(tmp_path), [0, 1, 2]))
    finally:
        release.set()
        rotation.join()


def test_god_declines_once_its_code_changed_on_disk(tmp_path: Path, warm_runner: CommandRunner,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert warm_runner.stamps
    changed = {path: stamp + 1 for path, stamp in warm_runner.stamps.items()}
    monkeypatch.setattr(runner, "_loaded_files", lambda: changed)
    assert "changed on disk" in str(warm_runner.refusal(_params(tmp_path), [0, 1, 2]))


def test_the_child_writes_to_the_callers_descriptors_and_reports_its_status(tmp_path: Path,
                                                                             warm_runner: CommandRunner) -> None:
    """The forked child takes the passed stdout and stderr (here pipes) and the caller's environment; god
    learns its exit status from the pidfd in its loop."""
    results: list[int] = []
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    stdin = os.open(os.devnull, os.O_RDONLY)
    for done, (argv, expected) in enumerate(((["start", "--help"], 0), (["start", "--no-such-option"], 2))):
        fds = [os.dup(stdin), os.dup(out_write), os.dup(err_write)]
        warm_runner.run(_params(tmp_path, argv=argv), fds, results.append)
        deadline = time.monotonic() + 30
        while len(results) == done and time.monotonic() < deadline:
            for key, mask in warm_runner.loop.selector.select(0.1):
                key.data(mask)
        assert results[-1] == expected
    for fd in (stdin, out_write, err_write):
        os.close(fd)
    with os.fdopen(out_read) as out, os.fdopen(err_read) as err:
        printed, complained = out.read(), err.read()
    assert "Usage:" in printed and "--name" in printed
    assert "--no-such-option" in complained


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "run" / "god.sock")
    ctx = Context(user=True, environ={"PMSD_GOD_SOCKET": path}, state_dir=str(tmp_path / "state"))
    with _serving(path, ApiHandlers(ctx, {}, {}, lambda: None)):  # a god with no runner: it declines
        yield path


def test_descriptors_no_request_takes_are_closed(served: str) -> None:
    """A request that comes with descriptors god does not take (here: god declines) leaves none open in god:
    the pipe's reading end, passed and then closed here, has no reader left."""
    read_end, write_end = os.pipe()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(served)
        socket.send_fds(sock, [encode({"id": 1, "method": "run", "params": {"argv": ["start"]}})], [read_end])
        os.close(read_end)
        with sock.makefile("rb") as reader:
            reply = decode(reader.readline())
    assert reply["error"]["message"] == "not run by god: god does not run commands"
    deadline = time.monotonic() + 5
    while True:
        try:
            os.write(write_end, b"x")
        except BrokenPipeError:
            break
        assert time.monotonic() < deadline, "god kept the passed descriptor open"
        time.sleep(0.01)
    os.close(write_end)


def test_the_cli_runs_the_command_itself_when_god_declines_or_is_absent(served: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMSD_GOD_SOCKET", served)
    assert delegate.run_in_god(["start", "app.py"]) is None  # declined: nothing was done
    monkeypatch.setenv("PMSD_GOD_SOCKET", str(tmp_path / "absent.sock"))
    assert delegate.run_in_god(["start", "app.py"]) is None
    assert delegate.wanted(["start", "app.py"], {})
    assert not delegate.wanted(["start", "app.py"], {"PMSD_NO_GOD": "1"})
    assert not delegate.wanted(["start", "app.py", "--attach"], {})
    assert not delegate.wanted(["--system", "start", "app.py"], {})
    assert not delegate.wanted(["restart", "app"], {})
    assert delegate.wanted(["jlist"], {}) and delegate.wanted(["ls"], {"PMSD_NO_GOD": "0"})
    assert delegate.wanted(["metrics"], {}) and not delegate.wanted(["monit"], {})
    assert delegate.wanted(["logs", "api", "--nostream"], {}) and not delegate.wanted(["logs", "api"], {})


def test_god_does_not_run_for_a_caller_that_hung_up(tmp_path: Path, warm_runner: CommandRunner) -> None:
    """A CLI interrupted before god answered may run the command itself: god must not run it as well."""
    ours, theirs = socket.socketpair()
    with ours:
        assert warm_runner.refusal(_params(tmp_path), [0, 1, 2], ours) is None
        theirs.close()
        assert "the caller has gone" in str(warm_runner.refusal(_params(tmp_path), [0, 1, 2], ours))


def test_modules_god_loads_later_do_not_count_as_changed_code(tmp_path: Path, warm_runner: CommandRunner,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: god imports some modules lazily for its own work after warming up; comparing the whole set
    made god decline every command from then on."""
    later = {**(warm_runner.stamps or {}), "/somewhere/pmsd/state/rebuild.py": 1}
    monkeypatch.setattr(runner, "_loaded_files", lambda: later)
    assert warm_runner.refusal(_params(tmp_path), [0, 1, 2]) is None
    gone = {path: stamp for path, stamp in later.items() if not path.endswith("/pmsd/cli/main.py")}
    monkeypatch.setattr(runner, "_loaded_files", lambda: gone)
    assert "changed on disk" in str(warm_runner.refusal(_params(tmp_path), [0, 1, 2]))
