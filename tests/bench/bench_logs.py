#!/usr/bin/env python3
"""Logs benchmark: `pmsd logs` against `pm2 logs` and journalctl, and what journald keeps of a burst.

    python3 tests/bench/bench_logs.py [--reps N] [--json PATH] [--no-fix]

Measures, in one run (about 2.5 minutes):
  tail     `logs APP --lines 1000 --nostream` of an app that printed 5,000 lines, against journalctl's
           `-n 1000` as the floor; again after 500,000 more lines went into the journal;
  follow   `logs APP --raw` (and `journalctl -f`): from the app printing a line to the line being read
           from the follower's stdout;
  burst    how many lines of a 200,000-line burst are kept: pmsd with journald's default rate limit, pmsd
           with the documented journald drop-in (journald is restarted twice, see --no-fix), and PM2.

Not a pytest test: it prints a table and, with --json, writes every sample. See README.md beside it.
Reuses the plumbing of bench_core.py (PM2 setup, pmsd lookup, environment).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

# Run as a script, this file's directory is sys.path[0]; the repository root makes `tests.bench.bench_core`
# importable under the same name mypy knows it by (tests/ is a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_core import (
    PYTHON,
    REPO_ROOT,
    BenchError,
    Manager,
    Pm2,
    become_subreaper,
    bench_env,
    find_pmsd,
    machine_meta,
    pm2_version,
    reap_orphans,
    run,
    scratch_dir,
    setup_pm2,
    stop_leftover_units,
)

APP_LINES = 5_000
TAIL_LINES = 1_000
FILLER_LINES = 500_000
BURST_LINES = 200_000
FOLLOW_SAMPLES = 10
# journald's default RateLimitIntervalSec; a window opens with the first message after the last one closed.
RATE_WINDOW_S = 30.0
QUIET_S = RATE_WINDOW_S + 1.0
APP_TIMEOUT = 120.0  # an app writing its lines, or journald catching up with them

DROPIN = Path("/etc/systemd/journald.conf.d/pmsd-bench.conf")
DROPIN_TEXT = "[Journal]\nRateLimitIntervalSec=30s\nRateLimitBurst=250000\n"
JOURNALD = "/lib/systemd/systemd-journald"
HARNESS_DIR = Path("/run/pmsd-harness")  # tests/harness/systemd-user.sh keeps journald's pid and log here
JOURNALD_PIDFILE = HARNESS_DIR / "journald.pid"
JOURNALD_LOG = HARNESS_DIR / "journald.log"
JOURNAL_STDOUT = Path("/run/systemd/journal/stdout")
DROPPED_MESSAGE_ID = "a596d6fe7bfa4994828e72309e95d61e"  # "Suppressed N messages from <unit>"

PYTHON_FLOOR = "python3 -c pass"
LINE_RE = re.compile(rb"logbench (\d{6}) ")
LATENCY_RE = re.compile(rb"logbench-latency (\d+) (\d+)")

# The app every manager runs. Lines are written through Python's normal block buffering (the fastest way
# a Python app prints) and flushed once; the pid goes to a marker file, never to stdout, so the bench knows
# the app finished writing without adding a line to what is counted. On SIGUSR1 it prints one line stamped
# with its own clock, flushed at once, for the follow latency.
APP_TEMPLATE = """\
import os, signal, sys, time

COUNT = {count}
DONE = {done!r}
seq = 0

def on_usr1(signum, frame):
    global seq
    seq += 1
    sys.stdout.write(f"logbench-latency {{seq}} {{time.time_ns()}}\\n")
    sys.stdout.flush()

signal.signal(signal.SIGUSR1, on_usr1)
write = sys.stdout.write
pad = "x" * 60
for i in range(COUNT):
    write(f"logbench {{i:06d}} {{pad}}\\n")
sys.stdout.flush()
with open(DONE + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(DONE + ".tmp", DONE)
while True:
    signal.pause()
"""

# Written by a process in the bench's own cgroup, not a unit's: journald rate-limits only messages it can
# attribute to a unit, and a user unit shares user@UID.service's ~37,500 lines per 30 s, so a unit could not
# add 500,000 lines in reasonable time. What matters for the figure is the journal's size.
FILLER_SCRIPT = """\
import sys
write = sys.stdout.write
for i in range({count}):
    write(f"filler {{i:07d}} " + "y" * 60 + "\\n")
"""


# ------------------------------------------------------------------------------------------------ apps


@dataclass
class LogApp:
    """One app of one manager: its name there and the marker it writes when done printing."""

    mgr: Manager
    name: str
    done: Path
    pid_cached: int = 0  # set once the app runs: signal_line() must not pay for a CLI call

    @property
    def unit(self) -> str:
        return f"pmsd-{self.name}.service"

    def wait_done(self, timeout: float = APP_TIMEOUT) -> int:
        """The app's pid, once it has written all its lines."""
        deadline = time.monotonic() + timeout
        while not self.done.exists():
            if time.monotonic() > deadline:
                raise BenchError(f"{self.mgr.label} app {self.name} did not finish writing in {timeout:.0f} s")
            time.sleep(0.05)
        return int(self.done.read_text())

    def pid(self) -> int:
        """The pid the manager reports (`X pid NAME`), checked against the one the app wrote itself.

        The bench signals this pid, so it must be the app's own process and nothing else."""
        out = run([*self.mgr.cli, "pid", self.name], self.mgr.env).stdout.split()
        reported = int(out[-1]) if out and out[-1].isdigit() else 0
        own = self.wait_done()
        if reported != own:
            raise BenchError(f"{self.mgr.label} pid {self.name} says {reported}, the app is {own}")
        return own

    def signal_line(self) -> None:
        """Make the app print one stamped line."""
        os.kill(self.pid_cached, signal.SIGUSR1)


def start_app(mgr: Manager, root: Path, name: str, count: int) -> LogApp:
    """Write an app that prints `count` numbered lines, and start it under mgr."""
    # One file per manager: both run an app of the same name, and the marker tells whose pid it is.
    script = root / f"{mgr.label}-{name}.py"
    done = root / f"{mgr.label}-{name}.done"
    script.write_text(APP_TEMPLATE.format(count=count, done=str(done)))
    run(mgr.start_argv(script, name), mgr.env)
    return LogApp(mgr, name, done)


def pm2_out_log(app: LogApp) -> Path:
    return Path(app.mgr.env["PM2_HOME"]) / "logs" / f"{app.name}-out.log"


def numbers_in(text: bytes) -> list[int]:
    return [int(n) for n in LINE_RE.findall(text)]


def journal_lines(unit: str, env: dict[str, str]) -> int:
    """How many numbered lines of `unit` the journal holds."""
    argv = ["journalctl", f"_SYSTEMD_USER_UNIT={unit}", "-o", "cat", "--no-pager"]
    out = subprocess.run(argv, env=env, capture_output=True, timeout=APP_TIMEOUT, check=False).stdout
    return len(LINE_RE.findall(out))


def file_lines(path: Path) -> int:
    try:
        return len(LINE_RE.findall(path.read_bytes()))
    except FileNotFoundError:
        return 0


def settled_count(count: Callable[[], int], expected: int, timeout: float = APP_TIMEOUT) -> int:
    """Poll `count` until it reaches `expected` or stops growing (journald dropped the rest).

    Call it only after the writer finished: then anything still to come is in a socket buffer, which
    journald drains in well under the two idle seconds this waits for."""
    deadline = time.monotonic() + timeout
    last, still = -1, 0
    while time.monotonic() < deadline:
        now = count()
        if now >= expected:
            return now
        still = still + 1 if now == last else 0
        if still >= 4:
            return now
        last = now
        time.sleep(0.5)
    return last


# ------------------------------------------------------------------------------------------------ tail


@dataclass
class Timing:
    """Samples of one command, and how many of the expected lines its last run printed."""

    label: str
    samples_ms: list[float] = field(default_factory=list)
    lines_seen: int | None = None
    error: str | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None


def tail_command(timing: Timing, argv: list[str], env: dict[str, str], first: int | None) -> Callable[[], float]:
    """One timed run of a tail command; fails unless it printed exactly lines first..first+999.

    first=None: a floor that prints no app lines, nothing to check."""
    wanted = set(range(first, first + TAIL_LINES)) if first is not None else set()

    def one() -> float:
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=APP_TIMEOUT, check=False)
        elapsed = (time.perf_counter() - t0) * 1e3
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-400:]}")
        if first is None:
            return elapsed
        seen = numbers_in(proc.stdout)
        timing.lines_seen = len(seen)
        if len(seen) != TAIL_LINES or set(seen) != wanted:
            raise BenchError(f"{timing.label} printed {len(seen)} numbered lines, not the last {TAIL_LINES}")
        return elapsed

    return one


def round_robin(n: int, commands: dict[str, tuple[Timing, Callable[[], float]]]) -> None:
    """n rounds after one discarded warm-up round, each command once per round.

    Interleaved rather than one command's n runs in a row: load from anything else on the machine then
    spreads over all commands instead of landing on whichever ran at that moment."""
    for round_no in range(n + 1):
        for timing, one in commands.values():
            if timing.error:
                continue
            try:
                elapsed = one()
            except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
                timing.error = str(exc)
                continue
            if round_no:
                timing.samples_ms.append(elapsed)


def measure_tail(pmsd_app: LogApp, pm2_app: LogApp | None, n: int, env: dict[str, str]) -> dict[str, Timing]:
    first = APP_LINES - TAIL_LINES
    lines = ["--lines", str(TAIL_LINES), "--nostream"]
    argvs = {"pmsd logs": ([*pmsd_app.mgr.cli, "logs", pmsd_app.name, *lines], pmsd_app.mgr.env)}
    if pm2_app:
        argvs["pm2 logs"] = ([*pm2_app.mgr.cli, "logs", pm2_app.name, *lines], pm2_app.mgr.env)
    jargv = ["journalctl", f"_SYSTEMD_USER_UNIT={pmsd_app.unit}", "-n", str(TAIL_LINES), "--no-pager"]
    argvs["journalctl -n"] = (jargv, env)
    # What any Python CLI pays before its first line of code (site's .pth files included): pmsd's floor.
    argvs[PYTHON_FLOOR] = ([PYTHON, "-c", "pass"], pmsd_app.mgr.env)
    timings = {label: Timing(label) for label in argvs}
    checks = {label: None if label == PYTHON_FLOOR else first for label in argvs}
    round_robin(
        n,
        {
            label: (timings[label], tail_command(timings[label], argv, e, checks[label]))
            for label, (argv, e) in argvs.items()
        },
    )
    for timing in timings.values():
        where = f"FAILED: {timing.error}" if timing.error else f"median {timing.median_ms:.1f} ms"
        print(f"  {timing.label}: {where} ({timing.lines_seen or 'no app'} lines)", flush=True)
    return timings


@dataclass
class JournalSize:
    entries: int
    bytes_on_disk: int
    files: int


def journal_size(env: dict[str, str]) -> JournalSize:
    """Entries and bytes over all journal files, from their headers."""
    out = run(["journalctl", "--header"], env).stdout
    entries = sum(int(m) for m in re.findall(r"^Entry objects: (\d+)", out, re.M))
    files = len(re.findall(r"^File path: ", out, re.M))
    used = sum(Path(p).stat().st_size for p in re.findall(r"^File path: (.+)$", out, re.M) if Path(p).exists())
    return JournalSize(entries, used, files)


def fill_journal(env: dict[str, str], count: int) -> int:
    """Add `count` lines to the journal (no unit, so no rate limit); return how many journald kept."""
    tag = f"logbench-filler-{os.getpid()}"
    run(["systemd-cat", "-t", tag, PYTHON, "-c", FILLER_SCRIPT.format(count=count)], env)
    last = f"filler {count - 1:07d} "
    deadline = time.monotonic() + APP_TIMEOUT
    # Cheap readiness check first: journald handles one stream in order, so the last line comes last.
    while not run(["journalctl", "-t", tag, "-n", "1", "-o", "cat"], env).stdout.startswith(last):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out = subprocess.run(
        ["journalctl", "-t", tag, "-o", "cat", "--no-pager"],
        env=env,
        capture_output=True,
        timeout=APP_TIMEOUT,
        check=False,
    ).stdout
    return out.count(b"filler ")


# ---------------------------------------------------------------------------------------------- follow


class Follower:
    """A `logs -f`-style process whose stdout lines are timestamped the moment this process reads them."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.lines: queue.Queue[tuple[int, bytes]] = queue.Queue()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        # A dedicated thread blocked in readline: the arrival time is taken as soon as the line is there,
        # not when the main thread next gets around to looking.
        for line in iter(stream.readline, b""):
            self.lines.put((time.time_ns(), line))

    def next_stamped(self, after_seq: int, timeout: float) -> tuple[int, float] | None:
        """(seq, latency in ms) of the next stamped line newer than after_seq, or None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                received, line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            match = LATENCY_RE.search(line)
            if match and int(match.group(1)) > after_seq:
                return int(match.group(1)), (received - int(match.group(2))) / 1e6
        return None

    def drain(self, after_seq: int, wait_s: float) -> int:
        """Consume whatever arrives within wait_s; the newest seq seen."""
        while (got := self.next_stamped(after_seq, wait_s)) is not None:
            after_seq = got[0]
        return after_seq

    def close(self) -> None:
        # Our own child, by its pid.
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@dataclass
class SeqTracker:
    """The newest stamped line seen from one app, so replayed history is never taken for a new line."""

    seq: int = 0


def wait_following(follower: Follower, app: LogApp, seen: SeqTracker) -> None:
    """Probe until two stamped lines in a row come through.

    One is not enough: the first could be history the follower printed before it started following. The
    second was printed after the first was read, so it came through the follow loop."""
    hits, deadline = 0, time.monotonic() + 30
    while hits < 2:
        if time.monotonic() > deadline:
            raise BenchError(f"follower of {app.name} showed no new line within 30 s")
        app.signal_line()
        got = follower.next_stamped(seen.seq, 1.0)
        hits = hits + 1 if got else 0
        if got:
            seen.seq = got[0]
    seen.seq = follower.drain(seen.seq, 0.3)


def measure_follow(argv: list[str], env: dict[str, str], app: LogApp, seen: SeqTracker, n: int) -> list[float]:
    follower = Follower(argv, env)
    try:
        wait_following(follower, app, seen)
        out = []
        for _ in range(n):
            # Random spacing, so samples do not fall into step with a follower's polling period.
            time.sleep(random.uniform(0.1, 0.3))
            app.signal_line()
            got = follower.next_stamped(seen.seq, 5.0)
            if got is None:
                raise BenchError(f"{' '.join(argv[:3])}: a stamped line did not arrive within 5 s")
            seen.seq, latency = got
            out.append(latency)
        return out
    finally:
        follower.close()


# ----------------------------------------------------------------------------------------------- burst


@dataclass
class Burst:
    label: str
    kept: int | None = None
    expected: int = BURST_LINES
    settle_s: float | None = None  # from starting the app until the count stopped growing
    reports: list[dict[str, Any]] = field(default_factory=list)  # journald's "Suppressed N messages"
    warning_before_report: bool | None = None  # `pmsd logs --nostream --lines 1` warned on stderr
    warning_after_report: bool | None = None
    error: str | None = None


def dropped_reports(since_s: float, env: dict[str, str]) -> list[dict[str, Any]]:
    """journald's reports about user@UID.service since `since_s` (epoch seconds)."""
    argv = ["journalctl", f"MESSAGE_ID={DROPPED_MESSAGE_ID}", "--since", f"@{int(since_s)}", "-o", "json", "--no-pager"]
    wanted = f"user@{os.getuid()}.service"
    reports = []
    for line in run(argv, env, check=False).stdout.splitlines():
        with suppress(ValueError):
            entry = json.loads(line)
            message = str(entry.get("MESSAGE", ""))
            if wanted in message:
                reports.append(
                    {
                        "message": message,
                        "n_dropped": int(entry.get("N_DROPPED", 0)),
                        "usec": int(entry["__REALTIME_TIMESTAMP"]),
                    }
                )
    return reports


def pmsd_warns(app: LogApp) -> bool:
    """Whether `pmsd logs APP --nostream --lines 1` warns on stderr that journald dropped lines."""
    proc = run([*app.mgr.cli, "logs", app.name, "--nostream", "--lines", "1"], app.mgr.env)
    return "journald dropped" in proc.stderr


def pmsd_burst(label: str, pmsd: Manager, root: Path, name: str, env: dict[str, str]) -> tuple[Burst, LogApp]:
    result = Burst(label)
    t0 = time.monotonic()
    app = start_app(pmsd, root, name, BURST_LINES)
    app.pid_cached = app.pid()
    result.kept = settled_count(lambda: journal_lines(app.unit, env), BURST_LINES)
    result.settle_s = round(time.monotonic() - t0, 1)
    print(f"  {label}: kept {result.kept:,} of {BURST_LINES:,} ({result.settle_s} s)", flush=True)
    return result, app


def pm2_burst(pm2: Manager, root: Path, name: str) -> Burst:
    result = Burst("pm2")
    t0 = time.monotonic()
    app = start_app(pm2, root, name, BURST_LINES)
    app.wait_done()
    result.kept = settled_count(lambda: file_lines(pm2_out_log(app)), BURST_LINES)
    result.settle_s = round(time.monotonic() - t0, 1)
    print(f"  pm2: kept {result.kept:,} of {BURST_LINES:,} ({result.settle_s} s)", flush=True)
    return result


def await_report(burst: Burst, app: LogApp, window_opened: float, env: dict[str, str]) -> None:
    """Make journald write its "Suppressed" report, and see whether `pmsd logs` warns before and after.

    journald writes the report only when the next message from that unit arrives after the window
    closed: one stamped line from the app, once the window (opened about when the app started) is over."""
    burst.warning_before_report = pmsd_warns(app)
    time.sleep(max(0.0, window_opened + QUIET_S - time.time()))
    app.signal_line()
    deadline = time.monotonic() + 10
    while not burst.reports and time.monotonic() < deadline:
        time.sleep(0.3)
        burst.reports = dropped_reports(window_opened - 1, env)
    burst.warning_after_report = pmsd_warns(app)
    dropped = sum(r["n_dropped"] for r in burst.reports)
    print(
        f"  journald reported {dropped:,} dropped; pmsd logs warns before the report: "
        f"{burst.warning_before_report}, after: {burst.warning_after_report}",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------- journald


def journald_pid() -> int:
    """The pid of the journald the harness started, refusing anything that is not journald."""
    pid = int(JOURNALD_PIDFILE.read_text().split()[0])
    if pid <= 1 or not running(pid) or os.path.realpath(f"/proc/{pid}/exe") != os.path.realpath(JOURNALD):
        raise BenchError(f"{JOURNALD_PIDFILE} names pid {pid}, which is not a running {JOURNALD}")
    return pid


def running(pid: int) -> bool:
    """Alive and not a zombie (journald's parent is PID 1 here, which may reap it late)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def restart_journald(env: dict[str, str]) -> int:
    """Stop our journald and start it again as the harness does, so it rereads its configuration.

    Streams of running services do not survive this (no fd store without systemd as PID 1): the bench
    deletes its apps first."""
    stop_journald()
    with open(JOURNALD_LOG, "ab") as log:
        # A new session, as `setsid ... &` gives it: journald must outlive the bench.
        proc = subprocess.Popen(
            [JOURNALD], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    JOURNALD_PIDFILE.write_text(f"{proc.pid}\n")
    wait_journald_ready(env)
    return proc.pid


def stop_journald() -> None:
    """SIGTERM the harness's journald and wait until it is gone; nothing to do if it already exited."""
    try:
        pid = journald_pid()
    except (BenchError, OSError, ValueError):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while running(pid):
        if time.monotonic() > deadline:
            # Never start a second journald beside a live one: both would serve the same sockets.
            raise BenchError(f"journald (pid {pid}) did not exit within 15 s of SIGTERM")
        time.sleep(0.05)


def wait_journald_ready(env: dict[str, str]) -> None:
    """Wait until the new journald stores what it is sent: the socket alone may be the old one's file."""
    token = f"logbench-ready-{os.getpid()}-{time.time_ns()}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if JOURNAL_STDOUT.exists():
            run(["systemd-cat", "-t", "logbench-ready", "echo", token], env, check=False)
            if token in run(["journalctl", "-t", "logbench-ready", "-n", "5", "-o", "cat"], env).stdout:
                return
        time.sleep(0.2)
    raise BenchError(f"journald stored nothing within 15 s of starting; see {JOURNALD_LOG}")


def other_services(prefix: str, env: dict[str, str]) -> list[str]:
    """Running user services that are not the bench's: their log streams break when journald restarts."""
    out = run(
        ["systemctl", "--user", "list-units", "--type=service", "--state=running", "--plain", "--no-legend"],
        env,
        check=False,
    ).stdout
    units = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [u for u in units if not u.startswith(f"pmsd-{prefix}") and u != "dbus.service"]


@contextmanager
def raised_rate_limit(pmsd: Manager, env: dict[str, str]) -> Iterator[None]:
    """The README's fix: a journald drop-in raising the rate limit, journald restarted to apply it.

    Always undone: the drop-in removed (and its directory, if we created it), journald restarted again."""
    journald_pid()  # refuse before changing anything if the pid file does not name journald
    created_dir = not DROPIN.parent.exists()
    pmsd.delete_all()
    try:
        DROPIN.parent.mkdir(parents=True, exist_ok=True)
        DROPIN.write_text(DROPIN_TEXT)
        restart_journald(env)
        yield
    finally:
        pmsd.delete_all()
        DROPIN.unlink(missing_ok=True)
        if created_dir:
            with suppress(OSError):
                DROPIN.parent.rmdir()
        restart_journald(env)
        print("  journald restarted with its default configuration again", flush=True)


# ------------------------------------------------------------------------------------------------ bench


@dataclass
class LogBench:
    n: int
    root: Path
    env: dict[str, str]
    pmsd: Manager
    pm2: Pm2 | None
    prefix: str  # app names, unique per run so journalctl never counts an earlier run's lines
    results: dict[str, Any] = field(default_factory=dict)
    last_user_log: float = 0.0  # time.time() of the bench's last message under user@UID.service

    def name(self, what: str) -> str:
        return f"{self.prefix}{what}"

    def start_pair(self, what: str, count: int) -> tuple[LogApp, LogApp | None]:
        pmsd_app = start_app(self.pmsd, self.root, self.name(what), count)
        pm2_app = start_app(self.pm2, self.root, self.name(what), count) if self.pm2 else None
        for app in (pmsd_app, pm2_app):
            if app:
                app.pid_cached = app.pid()
        self.last_user_log = time.time()
        return pmsd_app, pm2_app

    def wait_written(self, pmsd_app: LogApp, pm2_app: LogApp | None, count: int) -> None:
        got = settled_count(lambda: journal_lines(pmsd_app.unit, self.env), count)
        if got != count:
            raise BenchError(f"the journal holds {got} of {pmsd_app.name}'s {count} lines")
        if pm2_app and settled_count(lambda: file_lines(pm2_out_log(pm2_app)), count) != count:
            raise BenchError(f"PM2's log file lacks lines of {pm2_app.name}")

    def follow_part(self, pmsd_app: LogApp, pm2_app: LogApp | None) -> None:
        print("== follow latency ==", flush=True)
        pmsd_seen, pm2_seen = SeqTracker(), SeqTracker()
        followers: list[tuple[str, list[str], dict[str, str], LogApp, SeqTracker]] = [
            ("pmsd logs --raw", [*self.pmsd.cli, "logs", pmsd_app.name, "--raw"], self.pmsd.env, pmsd_app, pmsd_seen),
            (
                "journalctl -f",
                ["journalctl", f"_SYSTEMD_USER_UNIT={pmsd_app.unit}", "-f", "-n", "0", "-o", "cat"],
                self.env,
                pmsd_app,
                pmsd_seen,
            ),
        ]
        if pm2_app:
            followers.append(
                (
                    "pm2 logs --raw",
                    [*pm2_app.mgr.cli, "logs", pm2_app.name, "--raw"],
                    pm2_app.mgr.env,
                    pm2_app,
                    pm2_seen,
                )
            )
        out: dict[str, Any] = {}
        for label, argv, env, app, seen in followers:
            timing = Timing(label)
            try:
                timing.samples_ms = measure_follow(argv, env, app, seen, FOLLOW_SAMPLES)
                print(f"  {label}: median {timing.median_ms:.1f} ms", flush=True)
            except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
                timing.error = str(exc)
                print(f"  {label}: FAILED: {exc}", flush=True)
            out[label] = timing
        self.last_user_log = time.time()
        self.results["follow"] = out

    def tail_part(self, pmsd_app: LogApp, pm2_app: LogApp | None) -> None:
        print(f"== last {TAIL_LINES} lines ==", flush=True)
        before = journal_size(self.env)
        self.results["tail_small"] = measure_tail(pmsd_app, pm2_app, self.n, self.env)
        print(f"  adding {FILLER_LINES:,} lines to the journal ...", flush=True)
        filler_kept = fill_journal(self.env, FILLER_LINES)
        after = journal_size(self.env)
        print(
            f"  journal: {before.entries:,} -> {after.entries:,} entries, {before.bytes_on_disk / 2**20:.0f} -> "
            f"{after.bytes_on_disk / 2**20:.0f} MiB, {after.files} file(s); filler kept {filler_kept:,}",
            flush=True,
        )
        self.results["journal"] = {"before": asdict(before), "after": asdict(after), "filler_kept": filler_kept}
        self.results["tail_big"] = measure_tail(pmsd_app, pm2_app, self.n, self.env)

    def burst_part(self, fix: bool) -> None:
        print(f"== {BURST_LINES:,}-line burst ==", flush=True)
        bursts: dict[str, Burst] = {}
        self.results["burst"] = bursts
        # journald's budget is per window and shared by every user unit: lines logged less than a window
        # ago (the apps above, systemd's own "Started" messages) would eat into this burst's share.
        wait = self.last_user_log + QUIET_S - time.time()
        if wait > 0:
            print(f"  waiting {wait:.0f} s for journald's rate-limit window to close ...", flush=True)
            time.sleep(wait)
        window_opened = time.time()
        bursts["pmsd default"], app = self.guarded(
            "pmsd default", lambda: pmsd_burst("pmsd default", self.pmsd, self.root, self.name("burst"), self.env)
        )
        # PM2's burst runs while journald's window runs out: PM2 does not log to journald at all.
        if self.pm2:
            pm2 = self.pm2
            bursts["pm2"], _ = self.guarded("pm2", lambda: (pm2_burst(pm2, self.root, self.name("burst")), None))
        if app is not None:
            await_report(bursts["pmsd default"], app, window_opened, self.env)
        if fix:
            self.fix_part(bursts)

    def fix_part(self, bursts: dict[str, Burst]) -> None:
        others = other_services(self.prefix, self.env)
        if others:
            print(
                f"  note: restarting journald breaks the log streams of {len(others)} other running "
                f"service(s): {' '.join(others[:5])}",
                flush=True,
            )
        try:
            with raised_rate_limit(self.pmsd, self.env):
                print(f"  journald restarted with {DROPIN}", flush=True)
                bursts["pmsd with fix"], _ = self.guarded(
                    "pmsd with fix",
                    lambda: pmsd_burst("pmsd with fix", self.pmsd, self.root, self.name("burst-fix"), self.env),
                )
        except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
            bursts.setdefault("pmsd with fix", Burst("pmsd with fix", error=str(exc)))
            print(f"  fix: FAILED: {exc}", flush=True)

    def guarded(self, label: str, step: Callable[[], tuple[Burst, LogApp | None]]) -> tuple[Burst, LogApp | None]:
        try:
            return step()
        except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
            print(f"  {label}: FAILED: {exc}", flush=True)
            return Burst(label, error=str(exc)), None

    def run(self, fix: bool) -> None:
        pmsd_app, pm2_app = self.start_pair("tail", APP_LINES)
        follow_pmsd, follow_pm2 = self.start_pair("follow", 0)
        self.wait_written(pmsd_app, pm2_app, APP_LINES)
        self.follow_part(follow_pmsd, follow_pm2)
        self.tail_part(pmsd_app, pm2_app)
        self.burst_part(fix)


# ----------------------------------------------------------------------------------------------- report


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def median_of(results: dict[str, Any], part: str, label: str) -> float | None:
    timing = results.get(part, {}).get(label)
    return timing.median_ms if isinstance(timing, Timing) else None


RATIOS = [
    ("tail: pmsd / PM2", "pmsd logs", "pm2 logs"),
    ("tail: pmsd / journalctl -n", "pmsd logs", "journalctl -n"),
    ("tail: pmsd / python3 -c pass", "pmsd logs", PYTHON_FLOOR),
]
TARGET_VS_PM2 = 0.2  # the goal: `pmsd logs --lines 1000 --nostream` at most a fifth of PM2's time


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for part, size in (("tail_small", "journal as found"), ("tail_big", f"+{FILLER_LINES:,} lines")):
        for row, num, den in RATIOS:
            out[f"{row} ({size})"] = ratio(median_of(results, part, num), median_of(results, part, den))
    for label in ("pmsd logs", "pm2 logs", "journalctl -n"):
        out[f"tail: {label} bigger / as found"] = ratio(
            median_of(results, "tail_big", label), median_of(results, "tail_small", label)
        )
    out["follow: pmsd / PM2"] = ratio(
        median_of(results, "follow", "pmsd logs --raw"), median_of(results, "follow", "pm2 logs --raw")
    )
    out["follow: pmsd / journalctl -f"] = ratio(
        median_of(results, "follow", "pmsd logs --raw"), median_of(results, "follow", "journalctl -f")
    )
    return out


def fmt(value: float | None, spec: str = "8.1f", suffix: str = "") -> str:
    return f"{value:{spec}}{suffix}" if value is not None else "       -"


def print_report(results: dict[str, Any], n: int) -> None:
    print(f"\nlast {TAIL_LINES} lines (--nostream), median of {n} fresh runs, ms")
    print(f"  {'':40s}{'journal as found':>18s}{f'+{FILLER_LINES // 1000}k lines':>14s}  lines printed")
    for label in ("pmsd logs", "pm2 logs", "journalctl -n", PYTHON_FLOOR):
        small, big = results.get("tail_small", {}).get(label), results.get("tail_big", {}).get(label)
        if isinstance(small, Timing) and isinstance(big, Timing):
            print(
                f"  {label:40s}{fmt(small.median_ms, '18.1f')}{fmt(big.median_ms, '14.1f')}  {big.lines_seen or '-'}"
                + ("  FAILED" if small.error or big.error else "")
            )
    journal = results.get("journal")
    if journal:
        print(f"  journal entries: {journal['before']['entries']:,} -> {journal['after']['entries']:,}")
    print(f"\nfollow: app prints a line -> read from the follower's stdout, median of {FOLLOW_SAMPLES}, ms")
    for label, timing in results.get("follow", {}).items():
        spread = f"  (min {min(timing.samples_ms):.1f}, max {max(timing.samples_ms):.1f})" if timing.samples_ms else ""
        print(f"  {label:56s}{fmt(timing.median_ms)}{spread}" + ("  FAILED" if timing.error else ""))
    print(f"\n{BURST_LINES:,}-line burst: lines kept")
    for label, burst in results.get("burst", {}).items():
        print(f"  {label:56s}{fmt(burst.kept, '8,d')}" + (f"  FAILED: {burst.error}" if burst.error else ""))
    default = results.get("burst", {}).get("pmsd default")
    if default and default.warning_after_report is not None:
        dropped = sum(r["n_dropped"] for r in default.reports)
        print(
            f"  journald's report: {dropped:,} dropped ({len(default.reports)} report(s)); `pmsd logs` warned "
            f"before it: {default.warning_before_report}, after it: {default.warning_after_report}"
        )
    print("\nratios of medians")
    for row, value in ratios(results).items():
        print(f"  {row:56s}{fmt(value, '8.2f', 'x')}")
    vs_pm2 = [v for k, v in ratios(results).items() if k.startswith("tail: pmsd / PM2") and v is not None]
    if vs_pm2:
        verdict = "met" if max(vs_pm2) <= TARGET_VS_PM2 else "NOT met"
        print(f"  target tail pmsd <= {TARGET_VS_PM2}x PM2: {verdict}")


def to_json(value: Any) -> Any:
    if isinstance(value, Timing):
        return {**asdict(value), "median_ms": value.median_ms}
    if isinstance(value, Burst):
        return asdict(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7, help="timed runs per tail figure (default 7)")
    parser.add_argument("--json", type=Path, help="write all samples and results here")
    parser.add_argument(
        "--no-fix", action="store_true", help="skip the burst with the journald drop-in (it restarts journald twice)"
    )
    parser.add_argument("--skip-pm2", action="store_true")
    return parser.parse_args(argv)


def compile_pmsd(env: dict[str, str]) -> None:
    """Bytecode for pmsd up front (into bench_env's cache), as an installed tool has its .pyc files."""
    run([PYTHON, "-m", "compileall", "-q", str(REPO_ROOT / "pmsd")], env, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = bench_env()
    become_subreaper()
    began = time.monotonic()
    load_before = os.getloadavg()
    compile_pmsd(env)
    results: dict[str, Any] = {}
    prefix = f"lb{os.getpid()}-"
    with scratch_dir() as scratch:
        (scratch / "apps").mkdir()
        pmsd = find_pmsd(env, scratch / "state")
        if pmsd is None:
            print("pmsd is required", file=sys.stderr)
            return 1
        pm2 = None if args.skip_pm2 else setup_pm2(scratch, env)
        try:
            if pm2:
                run([*pm2.cli, "ping"], pm2.env)  # fork PM2's daemon before anything is timed
            bench = LogBench(args.reps, scratch / "apps", env, pmsd, pm2, prefix, results)
            bench.run(fix=not args.no_fix)
        except (BenchError, subprocess.TimeoutExpired, OSError) as exc:
            print(f"benchmark stopped: {exc}", flush=True)
        finally:
            pmsd.delete_all()
            stop_leftover_units(f"pmsd-{prefix}*", env)
            if pm2:
                pm2.kill()
    reap_orphans()
    print_report(results, args.reps)
    meta = {
        "reps": args.reps,
        "python": PYTHON,
        "pm2_version": pm2_version(),
        "pmsd_cli": pmsd.cli,
        "app_lines": APP_LINES,
        "tail_lines": TAIL_LINES,
        "filler_lines": FILLER_LINES,
        "burst_lines": BURST_LINES,
        "follow_samples": FOLLOW_SAMPLES,
        **machine_meta(began, load_before),
    }
    if args.json:
        doc = {"meta": meta, "results": to_json(results), "ratios": ratios(results)}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
