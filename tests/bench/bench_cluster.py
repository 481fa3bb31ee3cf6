#!/usr/bin/env python3
"""Cluster benchmark: HTTP throughput and zero-downtime reload, PM2 cluster mode vs pmsd vs raw systemd.

    python3 tests/bench/bench_cluster.py [--seconds 10] [--reload-at 3] [--instances 2] [--port-in-code]
                                         [--json PATH]

The same app (tests/apps/cluster_http.js, 2 instances) under three systems, one after the other:
  PM2   `pm2 start app.js -i 2` (Node's cluster module: PM2's God accepts and hands connections to workers);
  pmsd  `pmsd start app.js -i 2 --port 127.0.0.1:PORT` (a template unit sharing one systemd socket unit);
  raw   hand-written units mirroring what pmsd writes, "reloaded" with `systemctl --user restart` per instance.
--port-in-code runs a copy of the app with its port written in the code, and no port in the definition (`pmsd
start app.js -i N`): pmsd finds the port on the first start (README, Cluster mode). The raw units still declare
it: they are the floor. Either way the table also has the time from the start command to every instance online
and the port answering, on the first start and on a later one (stop, then start again).

For each: steady throughput (wrk, no reload), a wrk run of the same length with the reload command at
--reload-at seconds, and a "reload window" wrk run that lasts exactly as long as a second reload. Prints a table
with ratios pmsd/PM2 and pmsd/raw; --json writes every raw figure. See README.md beside it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this file's directory is sys.path[0]; the repository root makes `tests.bench.bench_core`
# importable under the same name mypy knows it by (tests/ is a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_core import (
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
from tests.bench.bench_god import cpu_ticks, pm2_god_pid

APP = REPO_ROOT / "tests" / "apps" / "cluster_http.js"
PRELOAD = REPO_ROOT / "pmsd" / "definition" / "preload" / "node.js"
CONNECTIONS = 16
WARMUP_S = 2  # discarded wrk run before the steady one: Node's JIT and the page cache warm up
SETTLE_S = 1.0  # after a reload, before the window run: the new instances are fresh, as after any reload
WINDOW_LEAD_S = 0.1  # the window run's wrk connects and reaches steady load before the reload starts
READY_TIMEOUT = 30.0
POLL_S = 0.05  # wait_serving's poll: the start-to-serving figures are this coarse
RELOAD_TIMEOUT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk's done() hook runs once, after the run, in its main Lua state: one JSON line with the figures the text
# output rounds or leaves out. Only done() is defined, so wrk keeps its fast path (no per-request Lua call).
WRK_LUA = """\
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, "connect": %.0f, "read": %.0f, ' ..
    '"write": %.0f, "status": %.0f, "timeout": %.0f, "min_us": %.0f, "mean_us": %.1f, "max_us": %.0f, ' ..
    '"p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, "p999_us": %.0f}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""
ERROR_KINDS = ("connect", "read", "write", "timeout", "status")  # status: responses with a status >= 400


# ------------------------------------------------------------------------------------------------- wrk


@dataclass
class WrkRun:
    """One wrk run: what its done() hook reported (latencies in microseconds)."""

    duration_us: float
    requests: float
    bytes: float
    connect: float
    read: float
    write: float
    status: float
    timeout: float
    min_us: float
    mean_us: float
    max_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def errors(self) -> int:
        return int(sum(getattr(self, kind) for kind in ERROR_KINDS))

    def error_breakdown(self) -> str:
        return "/".join(str(int(getattr(self, kind))) for kind in ERROR_KINDS)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"rps": self.rps, "errors": self.errors}


@dataclass
class Wrk:
    lua: Path
    url: str

    def spawn(self, seconds: int, out: Path, *, close: bool = False) -> subprocess.Popen[bytes]:
        """close: every request on a new connection (`Connection: close`), so no keep-alive race."""
        argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(self.lua)]
        argv += ["-H", "Connection: close", self.url] if close else [self.url]
        with out.open("wb") as handle:
            return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)

    @staticmethod
    def finish(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> WrkRun:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError(f"wrk did not finish within {timeout:.0f} s") from None
        text = out.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("WRK_JSON "):
                return WrkRun(**json.loads(line.removeprefix("WRK_JSON ")))
        raise BenchError(f"wrk exited {proc.returncode} without its summary: {text[-500:]!r}")

    def run(self, seconds: int, out: Path) -> WrkRun:
        return self.finish(self.spawn(seconds, out), out, seconds + 15)


# --------------------------------------------------------------------------------------------- systems


class System:
    """One way of running the app's instances: start, the pids serving, the reload command, teardown."""

    label = ""

    def __init__(self, name: str, port: int, env: dict[str, str], app: Path, count: int) -> None:
        self.name = name
        self.port = port
        self.env = env
        self.app = app  # the script: APP, or a copy with the port written in its code
        self.count = count  # instances

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every instance, keeping the app defined (for a later start)."""
        raise NotImplementedError

    def start_again(self) -> None:
        raise NotImplementedError

    def instance_pids(self) -> list[int]:
        raise NotImplementedError

    def reload_argvs(self) -> list[list[str]]:
        raise NotImplementedError

    def helper_pids(self) -> dict[str, int]:
        """Processes of the manager on the request path (PM2's God), whose CPU is reported too."""
        return {}

    def teardown(self) -> None:
        raise NotImplementedError


class Pm2Cluster(System):
    label = "PM2"

    def __init__(self, pm2: Pm2, name: str, port: int, app: Path, count: int) -> None:
        # PM2 hands the CLI's environment to the app: PORT reaches cluster_http.js unchanged.
        super().__init__(name, port, pm2.env | {"PORT": str(port)}, app, count)
        self.pm2 = pm2

    def start(self) -> None:
        run([*self.pm2.cli, "ping"], self.env)  # fork the daemon first, as a user's PM2 already runs
        run([*self.pm2.cli, "start", str(self.app), "-i", str(self.count), "--name", self.name], self.env)

    def stop(self) -> None:
        run([*self.pm2.cli, "stop", self.name], self.env)

    def start_again(self) -> None:
        run([*self.pm2.cli, "start", self.name], self.env)

    def instance_pids(self) -> list[int]:
        apps = [a for a in self.pm2.jlist() if a.get("name") == self.name]
        return [int(a["pid"]) for a in apps if a.get("pm2_env", {}).get("status") == "online" and a.get("pid")]

    def reload_argvs(self) -> list[list[str]]:
        return [[*self.pm2.cli, "reload", self.name]]

    def helper_pids(self) -> dict[str, int]:
        return {"PM2 God": pm2_god_pid(self.pm2)}

    def teardown(self) -> None:
        run([*self.pm2.cli, "delete", self.name], self.env, check=False)
        self.pm2.kill()


class PmsdCluster(System):
    label = "pmsd"

    def __init__(self, pmsd: Manager, name: str, port: int, app: Path, count: int, declare_port: bool) -> None:
        super().__init__(name, port, pmsd.env, app, count)
        self.cli = pmsd.cli
        self.pmsd = pmsd
        self.declare_port = declare_port

    def start(self) -> None:
        argv = [*self.cli, "start", str(self.app), "--name", self.name, "-i", str(self.count)]
        run([*argv, "--port", f"127.0.0.1:{self.port}"] if self.declare_port else argv, self.env)

    def stop(self) -> None:
        run([*self.cli, "stop", self.name], self.env)

    def start_again(self) -> None:
        run([*self.cli, "start", self.name], self.env)

    def instance_pids(self) -> list[int]:
        apps = [a for a in self.pmsd.jlist() if a.get("name") == self.name]
        return [int(a["pid"]) for a in apps if a.get("pm2_env", {}).get("status") == "online" and a.get("pid")]

    def reload_argvs(self) -> list[list[str]]:
        return [[*self.cli, "reload", self.name]]

    def teardown(self) -> None:
        run([*self.cli, "delete", self.name], self.env, check=False)
        # pmsd may be what is broken: stop its units straight through systemd and remove files it left.
        stop_leftover_units(f"pmsd-{self.name}*", self.env)
        stop_leftover_units(f"pmsd.listen-{self.name}*", self.env)
        # systemd creates app-<template>.slice for a template's instances and keeps it after they are gone.
        slice_ = template_slice(f"pmsd-{self.name}")
        if run(["systemctl", "--user", "is-active", slice_], self.env, check=False).stdout.strip() == "active":
            print(f"  pmsd delete left {slice_} active, stopping it", flush=True)
            run(["systemctl", "--user", "stop", slice_], self.env, check=False)
        unit_dir = Path(self.env["XDG_RUNTIME_DIR"]) / "systemd" / "user"
        left = [*unit_dir.glob(f"pmsd-{self.name}[@.]*"), *unit_dir.glob(f"pmsd.listen-{self.name}.*")]
        if left:
            print(f"  pmsd left unit files behind, removing: {[p.name for p in left]}", flush=True)
            for path in left:
                path.unlink()
            run(["systemctl", "--user", "daemon-reload"], self.env, check=False)


def template_slice(template: str) -> str:
    """The slice systemd puts a template's instances in: app-<escaped template name>.slice (user manager)."""
    return "app-" + template.replace("-", "\\x2d") + ".slice"


class RawCluster(System):
    """The floor: the units pmsd writes for a cluster app, by hand, minus pmsd's per-instance env file.

    A socket unit holds the listener; a oneshot "holder" service keeps it in the running state (otherwise
    systemd would start a service when a connection arrives while no instance accepts); the template names the
    socket in Sockets= and runs the app under pmsd's Node preload, which serves listen(PORT) on fd 3.
    """

    label = "raw systemd"

    def __init__(self, prefix: str, port: int, env: dict[str, str], count: int) -> None:
        super().__init__(f"{prefix}raw", port, env, APP, count)
        self.unit_dir = Path(env["XDG_RUNTIME_DIR"]) / "systemd" / "user"
        self.socket = f"{self.name}.socket"
        self.holder = f"{self.name}-listen.service"
        self.instances = [f"{self.name}@{i}.service" for i in range(count)]
        self.written: list[Path] = []

    def files(self) -> dict[str, str]:
        node = shutil.which("node") or "/usr/bin/node"
        return {
            self.socket: (
                f"[Unit]\nDescription=pmsd bench floor: shared listening socket\n\n"
                f"[Socket]\nListenStream=127.0.0.1:{self.port}\nService={self.holder}\n"
            ),
            self.holder: (
                f"[Unit]\nDescription=pmsd bench floor: socket holder\nBindsTo={self.socket}\nAfter={self.socket}\n\n"
                "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
            ),
            f"{self.name}@.service": (
                f"[Unit]\nDescription=pmsd bench floor (instance %i)\nRequires={self.socket}\nAfter={self.socket}\n"
                f"Wants={self.holder}\n\n"
                f"[Service]\nSockets={self.socket}\n"
                f"Environment=PORT={self.port} PMSD_LISTEN_PORT={self.port} NODE_APP_INSTANCE=%i\n"
                f"ExecStart={node} --require {PRELOAD} {APP}\n"
                f"Type=exec\nKillSignal=SIGINT\nSendSIGKILL=yes\nWorkingDirectory={REPO_ROOT}\n"
                "Restart=always\nRestartSec=0s\nTimeoutStopSec=1600ms\n"
            ),
        }

    def systemctl(self, *args: str, check: bool = True) -> str:
        return run(["systemctl", "--user", *args], self.env, check=check).stdout

    def start(self) -> None:
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        for unit, text in self.files().items():
            path = self.unit_dir / unit
            path.write_text(text)
            self.written.append(path)
        self.systemctl("daemon-reload")
        self.systemctl("start", *self.instances)

    def stop(self) -> None:
        self.systemctl("stop", *self.instances, self.holder, self.socket)

    def start_again(self) -> None:
        self.systemctl("start", *self.instances)

    def instance_pids(self) -> list[int]:
        out = self.systemctl("show", "-p", "MainPID", "--value", *self.instances)
        return [int(pid) for pid in out.split() if pid != "0"]

    def reload_argvs(self) -> list[list[str]]:
        return [["systemctl", "--user", "restart", unit] for unit in self.instances]

    def teardown(self) -> None:
        self.systemctl("stop", *self.instances, self.holder, self.socket, template_slice(self.name), check=False)
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()
        self.systemctl("daemon-reload", check=False)
        self.systemctl("reset-failed", f"{self.name}*", check=False)


def port_in_code_app(scratch: Path, label: str, port: int) -> Path:
    """A copy of the app whose port is a literal in its code, as most cluster apps have it."""
    path = scratch / f"app-{label}.js"
    text = APP.read_text().replace("server.listen(process.env.PORT,", f"server.listen({port},")
    if text == APP.read_text():
        raise BenchError(f"{APP} no longer calls server.listen(process.env.PORT, ...): update port_in_code_app")
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------ probes


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (SO_REUSEADDR: a connection in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(base: int, count: int) -> list[int]:
    ports = [p for p in range(base, 30000) if port_free(p)][:count]
    if len(ports) < count:
        raise BenchError(f"fewer than {count} free ports from {base} to 29999")
    return ports


def http_pid(port: int) -> int | None:
    """The pid an instance answers with, or None if nothing answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read()
        return int(body) if resp.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_serving(system: System) -> list[int]:
    """Until the manager reports all of the app's instances live and the port answers; returns the pids."""
    deadline = time.monotonic() + READY_TIMEOUT
    pids: list[int] = []
    answer: int | None = None
    while time.monotonic() < deadline:
        pids = system.instance_pids()
        if len(pids) == system.count and all(map(alive, pids)):
            answer = http_pid(system.port)
            if answer is not None:
                return sorted(pids)
        time.sleep(POLL_S)
    raise BenchError(f"{system.label}: not serving within {READY_TIMEOUT:.0f} s (pids {pids}, answer {answer})")


def wait_gone(pids: Sequence[int], port: int | None) -> None:
    """Nothing of a system may run while the next is measured (port None: only the pids must be gone)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left and (port is None or port_free(port)):
            return
        time.sleep(0.1)
    free = "not checked" if port is None else port_free(port)
    raise BenchError(f"after teardown: pids {[p for p in pids if alive(p)]} alive, port {port} free: {free}")


def ticks(pids: dict[str, int]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for label, pid in pids.items():
        try:
            out[label] = cpu_ticks(pid)
        except OSError:
            out[label] = None
    return out


def timed_reload(system: System) -> tuple[float, str | None]:
    """Wall time of the reload command(s), and an error text if one failed."""
    t0 = time.monotonic()
    for argv in system.reload_argvs():
        try:
            proc = subprocess.run(argv, env=system.env, capture_output=True, text=True, timeout=RELOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            return time.monotonic() - t0, f"{' '.join(argv[-3:])} timed out after {RELOAD_TIMEOUT:.0f} s"
        if proc.returncode != 0:
            return time.monotonic() - t0, f"{' '.join(argv[-3:])} exited {proc.returncode}: {proc.stderr[-300:]}"
    return time.monotonic() - t0, None


# ------------------------------------------------------------------------------------------- measurement


@dataclass
class SystemResult:
    label: str
    port: int
    steady: WrkRun | None = None
    reload: WrkRun | None = None
    reload_s: float | None = None
    window: WrkRun | None = None
    window_reload_s: float | None = None
    window_close: WrkRun | None = None  # the same with `Connection: close` requests
    window_close_reload_s: float | None = None
    start_s: float | None = None  # the first start command until every instance is online and the port answers
    start_again_s: float | None = None  # the same for a start after `stop`
    cpu_pct: dict[str, float | None] = field(default_factory=dict)  # % of one core during the steady run
    replaced: list[str] = field(default_factory=list)  # "old pids -> new pids" per reload
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("steady", "reload", "window", "window_close"):
            run_ = getattr(self, key)
            doc[key] = run_.to_json() if run_ else None
        return doc


def replaced(system: System, old: list[int], result: SystemResult) -> list[int]:
    """After a reload: every instance must be a new process, serving again."""
    new = wait_serving(system)
    result.replaced.append(f"{old} -> {new}")
    if set(old) & set(new):
        result.errors.append(f"reload left instance(s) {sorted(set(old) & set(new))} running")
    return new


def reload_window(system: System, wrk: Wrk, out: Path, close: bool) -> tuple[WrkRun, float, str | None]:
    """wrk from just before a reload until the reload command returns (SIGINT makes wrk stop within its
    100 ms stop check and report as usual), so its figures are those of the requests made during the reload."""
    proc = wrk.spawn(int(RELOAD_TIMEOUT * len(system.reload_argvs()) + 10), out, close=close)
    try:
        time.sleep(WINDOW_LEAD_S)
        reload_s, error = timed_reload(system)
    finally:
        proc.send_signal(signal.SIGINT)
    return wrk.finish(proc, out, 15), reload_s, error


def measure(system: System, wrk: Wrk, scratch: Path, seconds: int, reload_at: float) -> SystemResult:
    result = SystemResult(system.label, system.port)
    print(f"== {system.label} (port {system.port}) ==", flush=True)
    pids: list[int] = []
    try:
        t0 = time.monotonic()
        system.start()
        pids = wait_serving(system)
        result.start_s = time.monotonic() - t0
        system.stop()
        wait_gone(pids, None)  # PM2's God may keep the port open for the app's next workers
        t0 = time.monotonic()
        system.start_again()
        pids = wait_serving(system)
        result.start_again_s = time.monotonic() - t0
        print(f"  start to serving: first {result.start_s:.2f} s, again {result.start_again_s:.2f} s", flush=True)
        wrk.run(WARMUP_S, scratch / "wrk-warmup.txt")

        # 1. steady throughput, with the CPU each instance (and PM2's God) used meanwhile
        watched = {f"instance {i}": pid for i, pid in enumerate(pids)} | system.helper_pids()
        before, t0 = ticks(watched), time.monotonic()
        result.steady = wrk.run(seconds, scratch / f"wrk-steady-{system.label}.txt")
        after, elapsed = ticks(watched), time.monotonic() - t0
        for label in watched:
            b, a = before[label], after[label]
            result.cpu_pct[label] = None if a is None or b is None else 100 * (a - b) / CLK_TCK / elapsed
        print(f"  steady: {result.steady.rps:.0f} req/s, p99 {result.steady.p99_us / 1e3:.2f} ms", flush=True)

        # 2. the same load, with the reload command at reload_at
        out = scratch / f"wrk-reload-{system.label}.txt"
        proc = wrk.spawn(seconds, out)
        time.sleep(max(0.0, reload_at))
        result.reload_s, error = timed_reload(system)
        if error:
            result.errors.append(f"reload: {error}")
        result.reload = wrk.finish(proc, out, seconds + 15)
        pids = replaced(system, pids, result)
        print(f"  reload under load: {result.reload.errors} errors, command {result.reload_s:.2f} s", flush=True)

        # 3. the reload window, with keep-alive connections as above, then with a new connection per request
        for close in (False, True):
            time.sleep(SETTLE_S)
            tag = f"window{'-close' if close else ''}-{system.label}"
            run_, reload_s, error = reload_window(system, wrk, scratch / f"wrk-{tag}.txt", close)
            if error:
                result.errors.append(f"{tag} reload: {error}")
            if close:
                result.window_close, result.window_close_reload_s = run_, reload_s
            else:
                result.window, result.window_reload_s = run_, reload_s
            pids = replaced(system, pids, result)
    except (BenchError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        result.errors.append(str(exc))
        print(f"  FAILED: {exc}", flush=True)
    finally:
        try:
            last = system.instance_pids()
        except (BenchError, subprocess.TimeoutExpired, OSError, ValueError):
            last = []
        system.teardown()
        try:
            wait_gone([*pids, *last], system.port)
        except BenchError as exc:
            result.errors.append(str(exc))
            print(f"  {exc}", flush=True)
    return result


# ------------------------------------------------------------------------------------------------ report


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ms(us: float) -> float:
    return us / 1e3


Figure = Callable[[SystemResult], float | None]


def of(part: str, pick: Callable[[WrkRun], float]) -> Figure:
    """A figure of one wrk run ("steady", "reload", "window"), None when that run failed."""

    def get(result: SystemResult) -> float | None:
        got: WrkRun | None = getattr(result, part)
        return None if got is None else pick(got)

    return get


# (row label, figure, format, target for pmsd)
ROWS: list[tuple[str, Figure, str, str]] = [
    ("start to serving s, first", lambda r: r.start_s, "{:.2f}", ""),
    ("start to serving s, again", lambda r: r.start_again_s, "{:.2f}", ""),
    ("steady: requests/s", of("steady", lambda w: w.rps), "{:.0f}", ">=1.30x PM2"),
    ("steady: p50 latency ms", of("steady", lambda w: ms(w.p50_us)), "{:.2f}", ""),
    ("steady: p99 latency ms", of("steady", lambda w: ms(w.p99_us)), "{:.2f}", "<= PM2"),
    ("steady: max latency ms", of("steady", lambda w: ms(w.max_us)), "{:.1f}", ""),
    ("reload run: errors", of("reload", lambda w: w.errors), "{:.0f}", "0"),
    ("reload run: requests/s", of("reload", lambda w: w.rps), "{:.0f}", ""),
    ("reload run: p99 latency ms", of("reload", lambda w: ms(w.p99_us)), "{:.2f}", "<= PM2"),
    ("reload run: max latency ms", of("reload", lambda w: ms(w.max_us)), "{:.1f}", ""),
    ("reload command s", lambda r: r.reload_s, "{:.2f}", ""),
    ("window: wrk seconds", of("window", lambda w: w.duration_us / 1e6), "{:.2f}", ""),
    ("window: requests", of("window", lambda w: w.requests), "{:.0f}", ""),
    ("window: errors", of("window", lambda w: w.errors), "{:.0f}", "0"),
    ("window: p99 latency ms", of("window", lambda w: ms(w.p99_us)), "{:.2f}", "<= PM2"),
    ("window: max latency ms", of("window", lambda w: ms(w.max_us)), "{:.1f}", ""),
    ("window: reload command s", lambda r: r.window_reload_s, "{:.2f}", ""),
    ("close window: errors", of("window_close", lambda w: w.errors), "{:.0f}", "0"),
    ("close window: p99 ms", of("window_close", lambda w: ms(w.p99_us)), "{:.2f}", "<= PM2"),
    ("close window: max ms", of("window_close", lambda w: ms(w.max_us)), "{:.1f}", ""),
    ("close window: reload s", lambda r: r.window_close_reload_s, "{:.2f}", ""),
]


def value(figure: Figure, result: SystemResult | None) -> float | None:
    return None if result is None else figure(result)


def verdict(target: str, pmsd: float | None, pm2: float | None) -> str:
    if not target or pmsd is None:
        return ""
    if target == "0":
        return "ok" if pmsd == 0 else "MISS"
    if pm2 is None:
        return ""
    if target.startswith(">="):
        return "ok" if pmsd >= 1.3 * pm2 else "MISS"
    return "ok" if pmsd <= pm2 else "MISS"


def report(results: dict[str, SystemResult]) -> dict[str, Any]:
    pm2, pmsd, raw = (results.get(k) for k in ("PM2", "pmsd", "raw systemd"))
    head = f"{'':28s}{'PM2':>10s}{'pmsd':>10s}{'raw':>10s}{'pmsd/PM2':>10s}{'pmsd/raw':>10s}  target"
    print(f"\n{head}")
    ratios: dict[str, dict[str, float | None]] = {}
    for label, getter, fmt, target in ROWS:
        a, b, c = value(getter, pm2), value(getter, pmsd), value(getter, raw)
        r_pm2, r_raw = ratio(b, a), ratio(b, c)
        ratios[label] = {"pmsd/PM2": r_pm2, "pmsd/raw": r_raw}
        cells = "".join(f"{fmt.format(v) if v is not None else '-':>10s}" for v in (a, b, c))
        rs = "".join(f"{f'{v:.2f}x' if v is not None else '-':>10s}" for v in (r_pm2, r_raw))
        print(f"  {label:26s}{cells}{rs}  {target} {verdict(target, b, a)}".rstrip())
    print("\n  errors connect/read/write/timeout/status>=400 (reload run | window | close window):")
    for res in (pm2, pmsd, raw):
        if res is not None:
            runs = " | ".join(w.error_breakdown() if w else "-" for w in (res.reload, res.window, res.window_close))
            print(f"    {res.label:12s} {runs}")
    print("\n  CPU during the steady run, % of one core:")
    for res in (pm2, pmsd, raw):
        if res is not None and res.cpu_pct:
            cells = ", ".join(f"{k} {v:.0f}" if v is not None else f"{k} -" for k, v in res.cpu_pct.items())
            shares = [v or 0.0 for k, v in res.cpu_pct.items() if k.startswith("instance")]
            lopsided = sum(shares) > 0 and min(shares) < 0.2 * sum(shares)
            print(
                f"    {res.label:12s} {cells}" + ("  <- one instance served nearly all connections" if lopsided else "")
            )
    for res in (pm2, pmsd, raw):
        if res is not None:
            for change in res.replaced:
                print(f"  {res.label} instances {change}")
            for error in res.errors:
                print(f"  {res.label} FAILED: {error}")
    return ratios


# ------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration of the steady and reload runs")
    parser.add_argument("--reload-at", type=float, default=3.0, help="seconds into the reload run")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--skip-pm2", action="store_true")
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--port-base", type=int, help="first port to try (default: from the pid, in 20000-29999)")
    parser.add_argument("--instances", type=int, default=2, help="instances of the app")
    parser.add_argument("--port-in-code", action="store_true",
                        help="the app's port is written in its code; pmsd's definition declares none")
    return parser.parse_args(argv)


def tool_version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return (proc.stdout + proc.stderr).strip().splitlines()[0] if (proc.stdout + proc.stderr).strip() else "?"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    if args.reload_at >= args.seconds:
        print("--reload-at must fall inside --seconds", file=sys.stderr)
        return 2
    env = bench_env()
    become_subreaper()
    began, load_before = time.monotonic(), os.getloadavg()
    pid = os.getpid()
    prefix = f"pmsdbench-{pid}-"
    base = args.port_base or 20000 + (pid * 7) % 9000
    results: dict[str, SystemResult] = {}
    with scratch_dir() as scratch:
        lua = scratch / "summary.lua"
        lua.write_text(WRK_LUA)
        ports = pick_ports(base, 3)
        pmsd_env = env | {"PMSD_STATE_DIR": str(scratch / "state"), "PMSD_NO_GOD": "1"}
        pmsd = find_pmsd(pmsd_env, scratch / "xdg-state")
        pm2 = None if args.skip_pm2 else setup_pm2(scratch, env)
        try:
            systems: list[System] = []
            count = args.instances
            if pm2:
                app = port_in_code_app(scratch, "pm2", ports[0]) if args.port_in_code else APP
                systems.append(Pm2Cluster(pm2, f"{prefix}pm2", ports[0], app, count))
            if pmsd:
                app = port_in_code_app(scratch, "pmsd", ports[1]) if args.port_in_code else APP
                systems.append(PmsdCluster(pmsd, f"{prefix}pmsd", ports[1], app, count, not args.port_in_code))
            if not args.skip_raw:
                systems.append(RawCluster(prefix, ports[2], env, count))
            for system in systems:
                if not port_free(system.port):
                    raise BenchError(f"port {system.port} is taken")
                results[system.label] = measure(
                    system, Wrk(lua, f"http://127.0.0.1:{system.port}/"), scratch, args.seconds, args.reload_at
                )
        finally:
            if pm2:
                pm2.kill()
            reap_orphans()
    ratios = report(results)
    meta = {
        "seconds": args.seconds,
        "reload_at": args.reload_at,
        "connections": CONNECTIONS,
        "instances": args.instances,
        "port_in_code": args.port_in_code,
        "wrk": tool_version(["wrk", "-v"]),
        "node": tool_version(["node", "--version"]),
        "pm2_version": pm2_version() if pm2 else None,
        "pmsd_cli": pmsd.cli if pmsd else None,
        "ports": {r.label: r.port for r in results.values()},
        **machine_meta(began, load_before),
    }
    if args.json:
        doc = {"meta": meta, "results": {k: r.to_json() for k, r in results.items()}, "ratios": ratios}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    return 1 if any(r.errors for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
