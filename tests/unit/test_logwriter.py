"""god's log writer (pmsd.god.logwriter) on real pipes and files, and what the unit of an app whose files god
writes says (pmsd.definition.logpipes, the settings table). No systemd: the pipes are made here."""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from pmsd.api.logpipes import uses_log_pipes
from pmsd.context import Context
from pmsd.definition.logpipes import log_sinks, pipe_paths, render_log_units
from pmsd.definition.unitfiles import render_cluster_units, render_log_dropin
from pmsd.definition.units import transient_properties
from pmsd.god.logwriter import FileSink, LogTarget, LogWriter, Rotation, format_lines, rotated_files
from pmsd.god.loop import Loop
from pmsd.model.record import AppRecord
from pmsd.model.spec import DISCARD, UnitInputs
from tests.unit.helpers import make_spec

NOW = 1_796_000_000.25  # 2026-11-30T00:53:20.250Z


def test_pm2s_line_shapes() -> None:
    target = LogTarget("api", 3, (), ())
    assert format_lines([b"a", b"b"], "out", target, NOW) == b"a\nb\n"
    stamped = format_lines([b"a"], "out", LogTarget("api", 3, (), (), date_format="YYYY-MM-DD HH:mm"), NOW)
    assert re.fullmatch(rb"\d{4}-\d\d-\d\d \d\d:\d\d: a\n", stamped)
    record = json.loads(format_lines([b"caf\xc3\xa9"], "err", LogTarget("api", 3, (), (), as_json=True), NOW))
    assert record == {"message": "café", "timestamp": "2026-11-30T00:53:20.250Z", "type": "err", "process_id": 3,
                      "app_name": "api"}


def test_streams_go_to_pm2s_files() -> None:
    spec = make_spec(out_file="/l/out.log", error_file="/l/err.log", log_file="/l/all.log")
    assert log_sinks(spec) == {"out": ("/l/out.log", "/l/all.log"), "err": ("/l/err.log", "/l/all.log")}
    assert log_sinks(make_spec(log_file="/l/all.log")) == {"out": ("/l/all.log",), "err": ("/l/all.log",)}
    assert log_sinks(make_spec(out_file="/l/out.log")) == {"out": ("/l/out.log",)}
    assert log_sinks(make_spec()) == {}


@pytest.mark.parametrize(("spec_values", "instance", "expected"), [
    # PM2 7 (tests/pm2/test_logfiles_pm2.py): every instance of a multi-instance app, fork or cluster, even a
    # cluster of one, gets "-<pm_id>" before the extension; a name without one is shared; merge_logs shares all.
    ({"instances": 2}, 0, ("/l/out-7.log", "/l/err-7.log", "/l/all-7.log")),
    ({"exec_mode": "cluster"}, 0, ("/l/out-7.log", "/l/err-7.log", "/l/all-7.log")),
    ({"instances": 2, "merge_logs": True}, 1, ("/l/out.log", "/l/err.log", "/l/all.log")),
    ({}, None, ("/l/out.log", "/l/err.log", "/l/all.log")),
])
def test_each_instance_has_pm2s_own_files(spec_values: dict[str, object], instance: int | None,
                                          expected: tuple[str, ...]) -> None:
    spec = make_spec(out_file="/l/out.log", error_file="/l/err.log", log_file="/l/all.log", **spec_values)
    log_spec = AppRecord(7, spec, 0, instance=instance).log_spec
    assert (log_spec.out_file, log_spec.error_file, log_spec.log_file) == expected
    no_extension = AppRecord(7, make_spec(out_file="/l/out", error_file=DISCARD, instances=2), 0, instance=0)
    assert (no_extension.log_spec.out_file, no_extension.log_spec.error_file) == ("/l/out", DISCARD)


def test_an_instance_writes_to_its_own_pipes_through_a_drop_in() -> None:
    spec = make_spec(name="web", out_file="/l/out.log", instances=2)
    record = AppRecord(4, spec, 0, instance=1)
    pipes = pipe_paths(record.log_spec, True, {"XDG_RUNTIME_DIR": "/run/user/1000"}, record.instance)
    assert pipes == {"out": "/run/user/1000/pmsd-logs/web@1.out"}
    units = render_log_units("web", pipes, "pmsd-god.service", instance=1)
    assert set(units) == {"pmsd.log-web@1.socket", "pmsd.log-web@1.service"}
    assert "BindsTo=pmsd.log-web@1.socket\n" in units["pmsd.log-web@1.service"]
    dropin = render_log_dropin(UnitInputs(record.log_spec, "/s/env", log_pipes=pipes), 252)
    assert "StandardOutput=append:/run/user/1000/pmsd-logs/web@1.out\n" in dropin
    assert "StandardError=journal\n" in dropin
    direct = render_log_dropin(UnitInputs(record.log_spec, "/s/env"), 252)  # no god: systemd appends
    assert "StandardOutput=append:/l/out-4.log\n" in direct
    template = render_cluster_units(UnitInputs(spec, "/s/env-%i"), 252)["pmsd-web@.service"]
    assert "StandardOutput" not in template and "StandardError" not in template


def test_the_unit_writes_to_gods_pipes_and_the_rest_to_the_journal() -> None:
    spec = make_spec(out_file="/l/out.log")
    pipes = pipe_paths(spec, True, {"XDG_RUNTIME_DIR": "/run/user/1000"})
    assert pipes == {"out": f"/run/user/1000/pmsd-logs/{spec.name}.out"}
    properties = {p.name: p.value for p in transient_properties(UnitInputs(spec, "/s/env", log_pipes=pipes), 252)}
    assert properties["StandardOutputFileToAppend"] == pipes["out"]
    assert properties["StandardError"] == "journal"  # not inherited into stdout's pipe
    units = render_log_units(spec.name, pipes, "pmsd-god.service")
    assert f"ListenFIFO={pipes['out']}\n" in units[f"pmsd.log-{spec.name}.socket"]
    assert "Wants=pmsd-god.service\n" in units[f"pmsd.log-{spec.name}.service"]


@pytest.fixture
def pipes(tmp_path: Path) -> dict[str, str]:
    paths = {stream: str(tmp_path / f"app.{stream}") for stream in ("out", "err")}
    for path in paths.values():
        os.mkfifo(path)
    return paths


def _drain(loop: Loop) -> None:
    """Run god's loop for 0.1 s: long enough for the recheck of a pipe that held a partial line."""
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        loop.call_later(0.01, lambda: None)
        loop.run_once(lambda: None)


def test_lines_reach_every_file_of_their_stream(tmp_path: Path, pipes: dict[str, str]) -> None:
    loop = Loop()
    writer = LogWriter(loop, print)
    logs = tmp_path / "logs" / "deep"  # created by the writer
    combined = str(logs / "all.log")
    target = LogTarget("app", 0, tuple(sorted(pipes.items())),
                       (("err", (str(logs / "err.log"), combined)), ("out", (str(logs / "out.log"), combined))))
    writer.sync([target])
    out = os.open(pipes["out"], os.O_WRONLY)
    err = os.open(pipes["err"], os.O_WRONLY)
    os.write(out, b"one\ntw")
    _drain(loop)
    os.write(out, b"o\n")
    os.write(err, b"oops\n")
    _drain(loop)
    assert (logs / "out.log").read_text() == "one\ntwo\n"
    assert (logs / "err.log").read_text() == "oops\n"
    # Across the two pipes the order is the order god read them in; each stream's own order is kept.
    merged = (logs / "all.log").read_text().splitlines()
    assert sorted(merged) == ["one", "oops", "two"] and merged.index("one") < merged.index("two")
    # reloadLogs after the file was removed: a new one is written
    (logs / "out.log").unlink()
    writer.reopen()
    os.write(out, b"three\n")
    _drain(loop)
    assert (logs / "out.log").read_text() == "three\n"
    os.close(out)
    os.close(err)
    writer.close()


def test_size_rotation_keeps_every_line_and_only_the_newest_files(tmp_path: Path) -> None:
    path = str(tmp_path / "app.log")
    sink = FileSink(path, Rotation(max_bytes=100, retain=2, compress=True), None, print)
    lines = [f"line {n:03d} ".ljust(30, "x").encode() + b"\n" for n in range(40)]
    for line in lines:
        sink.write(line)
        os.utime(path, (1, 1))
    sink.close()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.daemon:
            thread.join(10)
    rotated = rotated_files(path)
    assert 1 <= len(rotated) <= 2 and all(name.endswith(".log.gz") for name in rotated)
    kept = b"".join(gzip.decompress(Path(name).read_bytes()) for name in rotated) + Path(path).read_bytes()
    assert kept.endswith(b"".join(lines[-3:]))  # the newest lines, whole and in order


def test_a_line_is_taken_from_the_pipe_only_once_it_is_written(tmp_path: Path, pipes: dict[str, str]) -> None:
    """Regression: god read up to 1 MiB, then wrote; a kill -9 in between lost what it had read (the e2e test
    killing god mid-burst failed in CI). Lines now stay in the pipe until written: a partial line is still
    there for the next god to read."""
    loop = Loop()
    writer = LogWriter(loop, print)
    out_file = tmp_path / "out.log"
    writer.sync([LogTarget("app", 0, (("out", pipes["out"]),), (("out", (str(out_file),)),))])
    out = os.open(pipes["out"], os.O_WRONLY)
    keeper = os.open(pipes["out"], os.O_RDONLY | os.O_NONBLOCK)  # a second reader, to look at what is left
    os.write(out, b"whole\npart")
    _drain(loop)
    assert out_file.read_text() == "whole\n"
    assert os.read(keeper, 100) == b"part"  # the partial line was never taken by god
    os.close(out)
    os.close(keeper)
    writer.close()


class _Listing:
    def __init__(self, state: str) -> None:
        self.active_state = state


class _Manager:
    def __init__(self, god_state: str | None) -> None:
        self.god_state = god_state

    def list_units(self, patterns: list[str]) -> list[_Listing]:
        return [] if self.god_state is None else [_Listing(self.god_state)]


@pytest.mark.parametrize(("god_state", "environ", "used"), [
    ("active", {}, True),
    ("activating", {}, True),
    ("failed", {}, False),  # could not start: its pipe would fill and the app's write() would wait
    (None, {}, False),
    ("active", {"PMSD_NO_GOD": "1"}, False),
])
def test_god_writes_the_files_only_when_it_runs(tmp_path: Path, god_state: str | None, environ: dict[str, str],
                                                used: bool) -> None:
    ctx = Context(user=True, environ={"XDG_RUNTIME_DIR": str(tmp_path), **environ}, state_dir=str(tmp_path))
    ctx._manager = _Manager(god_state)  # type: ignore[assignment]
    assert uses_log_pipes(ctx, make_spec(out_file="/l/out.log")) is used
    assert uses_log_pipes(ctx, make_spec()) is False  # no files: the journal


def test_an_app_whose_user_is_gone_does_not_stop_god(pipes: dict[str, str]) -> None:
    """Regression (found in review): identity_of's KeyError escaped LogWriter.sync, inside god's registry sync."""
    said: list[str] = []
    writer = LogWriter(Loop(), said.append)
    writer.sync([LogTarget("app", 0, (("out", pipes["out"]),), (("out", ("/l/out.log",)),),
                           owner=("no-such-user-pmsd", None))])
    assert writer.readers == {} and "no user 'no-such-user-pmsd'" in said[0]
