"""`pmsd logs` against the real journald: history, follow, formats, files, flush, suppression."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import APPS, Pmsd, wait_for

pytestmark = pytest.mark.e2e
TALKER = os.path.join(APPS, "talker.py")


def _start_talker(pmsd: Pmsd, name: str, lines: int, *extra: str, err_every: int = 0, tag: str = "") -> int:
    pmsd.run("start", TALKER, "--name", name, *extra,
             env={"LINES": str(lines), "TAG": tag or name, "ERR_EVERY": str(err_every)})
    return int(pmsd.app(name)["pid"])


def _history(pmsd: Pmsd, *args: str) -> list[str]:
    return pmsd.run("logs", *args, "--nostream").stdout.splitlines()


def _wait_lines(pmsd: Pmsd, name: str, count: int) -> list[str]:
    def enough() -> list[str] | None:
        lines = _history(pmsd, name, "--raw", "--lines", str(count + 50))
        return lines if len(lines) >= count else None

    return wait_for(enough, 10, f"{count} journal lines of {name}")


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def test_last_lines_in_order_with_prefix(pmsd: Pmsd, token: str) -> None:
    name = f"talk-{token}"
    _start_talker(pmsd, name, 40)
    _wait_lines(pmsd, name, 40)
    lines = _history(pmsd, name, "--lines", "10")
    body = [line for line in lines if not line.startswith("[TAILING]")]
    pm_id = pmsd.app(name)["pm_id"]
    assert body == [f"{pm_id}|{name} | {name} out {n}" for n in range(30, 40)]
    assert len(_history(pmsd, name)) == 1 + 15  # header + PM2's default of 15 lines


def test_json_and_raw_and_timestamp(pmsd: Pmsd, token: str) -> None:
    name = f"fmt-{token}"
    _start_talker(pmsd, name, 3)
    raw = _wait_lines(pmsd, name, 3)
    assert raw == [f"{name} out {n}" for n in range(3)]
    records = [json.loads(line) for line in _history(pmsd, name, "--json")]
    assert [r["message"] for r in records] == raw
    assert {r["app_name"] for r in records} == {name}
    assert {r["type"] for r in records} == {"out/err"}  # the journal cannot tell the streams apart
    assert all("timestamp" in r and "process_id" in r for r in records)
    stamped = _history(pmsd, name, "--raw", "--timestamp", "YYYY")
    assert all(line.startswith(time.strftime("%Y") + ": ") for line in stamped)


def test_several_apps_interleave_in_time_order(pmsd: Pmsd, token: str) -> None:
    first, second = f"first-{token}", f"second-{token}"
    _start_talker(pmsd, first, 5)
    _wait_lines(pmsd, first, 5)
    _start_talker(pmsd, second, 5)
    _wait_lines(pmsd, second, 5)
    lines = [line.split(" | ", 1)[1] for line in _history(pmsd, "all") if " | " in line]
    mine = [line for line in lines if token in line]
    assert mine == [f"{first} out {n}" for n in range(5)] + [f"{second} out {n}" for n in range(5)]


def test_follow_shows_a_new_line_within_a_second(pmsd: Pmsd, token: str) -> None:
    name = f"follow-{token}"
    pid = _start_talker(pmsd, name, 1)
    _wait_lines(pmsd, name, 1)
    follower = subprocess.Popen([sys.executable, "-m", "pmsd", "logs", name, "--raw"], env=pmsd.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == f"{name} out 0"
        time.sleep(0.3)  # let the follower reach its wait; the figure measured is print-to-display latency
        os.kill(pid, signal.SIGUSR1)  # our own app: it prints "ping 1 <time>"
        line = follower.stdout.readline()
        shown = time.time()
        assert line.startswith(f"{name} ping 1 ")
        printed = float(line.split()[-1])
        assert shown - printed < 1.0, shown - printed
        follower.send_signal(signal.SIGINT)  # Ctrl-C: exit 0, no traceback
        _, err = follower.communicate(timeout=10)
        assert follower.returncode == 0
        assert "Traceback" not in err
    finally:
        if follower.poll() is None:
            follower.kill()


def test_recreated_app_does_not_show_old_lines(pmsd: Pmsd, token: str) -> None:
    name = f"again-{token}"
    _start_talker(pmsd, name, 2, tag="old")
    _wait_lines(pmsd, name, 2)
    pmsd.run("delete", name)
    _start_talker(pmsd, name, 2, tag="new")
    lines = _wait_lines(pmsd, name, 2)
    assert lines == ["new out 0", "new out 1"]


def test_file_options_keep_stderr_apart(pmsd: Pmsd, token: str) -> None:
    name = f"files-{token}"
    out_file = os.path.join(pmsd.cwd, "out.log")
    err_file = os.path.join(pmsd.cwd, "err.log")
    _start_talker(pmsd, name, 6, "--output", out_file, "--error", err_file, err_every=3)
    wait_for(lambda: os.path.exists(err_file) and _read(err_file).count("\n") == 2, 10, "stderr lines")
    assert _read(out_file).splitlines() == [f"{name} out {n}" for n in (1, 2, 4, 5)]
    assert _history(pmsd, name, "--raw", "--err") == [f"{name} err 0", f"{name} err 3"]
    assert _history(pmsd, name, "--raw", "--out") == [f"{name} out {n}" for n in (1, 2, 4, 5)]
    pmsd.run("flush", name)
    assert os.path.getsize(out_file) == 0 and os.path.getsize(err_file) == 0
    assert _history(pmsd, name, "--raw") == []


def test_log_directories_are_created_as_pm2_creates_them(pmsd: Pmsd, token: str) -> None:
    """Regression (issue 16): `-o logs/deep/new/out.log` failed with "directory does not exist"; PM2 creates it."""
    name = f"deep-{token}"
    _start_talker(pmsd, name, 3, "-o", "logs/deep/new/out.log", "-e", "logs/deep/err/err.log", err_every=2)
    out_file = os.path.join(pmsd.cwd, "logs", "deep", "new", "out.log")
    err_file = os.path.join(pmsd.cwd, "logs", "deep", "err", "err.log")
    wait_for(lambda: os.path.exists(err_file) and _read(err_file).count("\n") == 2, 10, "stderr lines")
    assert _read(out_file).splitlines() == [f"{name} out 1"]


def test_err_never_shows_merged_journal_lines(pmsd: Pmsd, token: str) -> None:
    name = f"merged-{token}"
    _start_talker(pmsd, name, 4, err_every=2)
    _wait_lines(pmsd, name, 4)
    result = pmsd.run("logs", name, "--err", "--raw", "--nostream")
    assert result.stdout == ""
    assert "share one journal stream" in result.stderr


def test_flush_hides_earlier_journal_lines(pmsd: Pmsd, token: str) -> None:
    name = f"flushed-{token}"
    pid = _start_talker(pmsd, name, 3)
    _wait_lines(pmsd, name, 3)
    result = pmsd.run("flush", name)
    assert "journald keeps" in result.stdout
    assert _history(pmsd, name, "--raw") == []
    os.kill(pid, signal.SIGUSR1)
    lines = wait_for(lambda: _history(pmsd, name, "--raw"), 10, "a line after the flush")
    assert len(lines) == 1 and lines[0].startswith(f"{name} ping 1")


@pytest.mark.slow
def test_suppression_is_reported_after_a_burst(pmsd: Pmsd, token: str) -> None:
    """journald drops lines over its rate limit and reports it only when the 30 s window ends."""
    burst = f"burst-{token}"
    pmsd.run("start", sys.executable, "--name", burst, "--no-autorestart", "--",
             "-c", "import sys\nfor i in range(80000): sys.stdout.write(f'burst {i}\\n')\nsys.stdout.flush()")
    pid = _start_talker(pmsd, f"after-{token}", 0)

    def reported() -> bool:
        os.kill(pid, signal.SIGUSR1)  # a message after the window makes journald write its report
        return "journald dropped" in pmsd.run("logs", burst, "--nostream", "--lines", "1").stderr

    wait_for(reported, 60, "journald's suppression report surfaced by pmsd logs")
    assert "journald dropped" in pmsd.run("describe", burst).stdout
