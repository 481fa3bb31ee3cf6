#!/usr/bin/env python3
"""Metrics benchmark (issue 18): what a Prometheus scrape of pmsd costs with N idle apps, in one run.

    python3 tests/bench/bench_metrics.py [--apps 100] [--reps 20] [--seconds 60] [--json PATH]

With N idle apps (marker_app.py, default 100) held by pmsd and god serving the bench's registry
(bench_core.god_serving), measures (medians of --reps, after one discarded warm-up):
  cli      `pmsd metrics` (one scrape on stdout), and `pmsd jlist` as the reference, wall time;
  http     GET /metrics of god's listener (`pmsd set metrics_listen 127.0.0.1:PORT`) over loopback TCP with
           http.client, connect to last byte; the body's size; once, that it holds one pmsd_app_status series
           per app and state;
  floor    one `systemctl --user show -p MemoryCurrent -p CPUUsageNSec` of all N units: systemd's own numbers
           for the same apps (systemd has no scrape of its own to compare with);
  god      utime+stime of god's main pid over --seconds with nothing scraping, then over as many seconds with
           one scrape at the start of each: % of one core each, and the difference per scrape in ms of CPU;
           god's RSS before the first scrape and after the last.

Not a pytest test: it prints a table and, with --json, writes every sample. See README.md beside it. Stdlib only.
Everything it starts is removed at the end: metrics_listen unset, the apps deleted, leftover units stopped, god
stopped by god_serving.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this file's directory is sys.path[0]; the repository root makes `tests.bench.bench_core`
# importable under the same name mypy knows it by (tests/ is a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_cluster import pick_ports
from tests.bench.bench_core import (
    Apps,
    BenchError,
    Manager,
    Result,
    Results,
    become_subreaper,
    bench_env,
    find_pmsd,
    god_serving,
    machine_meta,
    measure_cmd,
    reap_orphans,
    run,
    samples,
    scratch_dir,
    stop_leftover_units,
)
from tests.bench.bench_god import CLK_TCK, SETTLE_S, cpu_ticks, rss_mib
from tests.bench.bench_scale import god_daemon, wait_online

HOST = "127.0.0.1"
LISTEN_TIMEOUT_S = 10.0  # god applies a change of metrics_listen at once; this is only a deadline
SCRAPE_TIMEOUT_S = 10.0  # god drops a client after 10 s (pmsd.god.metrics_http.CLIENT_TIMEOUT_S)
# Every status `pmsd ls` can show (pmsd.model.status.Status), spelt out: the bench is stdlib only, and a status
# added to or missing from the scrape should fail the check rather than go along with it.
STATES = ("launching", "online", "stopping", "stopped", "errored", "waiting restart")
STATUS_SERIES = re.compile(r'^pmsd_app_status\{name="([^"]*)",.*,state="([^"]*)"\} (\S+)$', re.MULTILINE)
APPS_GAUGE = re.compile(r"^pmsd_apps (\d+)$", re.MULTILINE)

CLI_METRICS = "pmsd metrics"
CLI_JLIST = "pmsd jlist"
HTTP = "GET /metrics (TCP)"
HTTP_WINDOW = "GET /metrics, once a second"
FLOOR = "systemctl show MemoryCurrent,CPUUsageNSec"
# (row, numerator, denominator), of medians
RATIOS = (
    ("HTTP scrape / CLI metrics", HTTP, CLI_METRICS),
    ("HTTP scrape / systemctl floor", HTTP, FLOOR),
    ("CLI metrics / systemctl floor", CLI_METRICS, FLOOR),
    ("CLI metrics / CLI jlist", CLI_METRICS, CLI_JLIST),
)


# ------------------------------------------------------------------------------------------------ scrape


def http_scrape(port: int) -> tuple[float, bytes]:
    """One GET /metrics as a scraper makes it (a new connection; god serves one request per connection): ms from
    connecting until the last byte of the answer was read, and the body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=SCRAPE_TIMEOUT_S)
    began = time.perf_counter()
    try:
        conn.request("GET", "/metrics")
        answer = conn.getresponse()
        body = answer.read()
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"GET http://{HOST}:{port}/metrics: {error}") from None
    finally:
        conn.close()
    elapsed_ms = (time.perf_counter() - began) * 1e3
    if answer.status != 200:
        raise BenchError(f"GET http://{HOST}:{port}/metrics answered {answer.status}: {body[:300]!r}")
    return elapsed_ms, body


def wait_listening(port: int, env: dict[str, str]) -> None:
    """Until god accepts connections on the port. A bare connect, closed without a request, so that god computes
    no scrape before the bench has read its RSS."""
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1.0).close()
            return
        except OSError as error:
            if time.monotonic() > deadline:
                log = run(["journalctl", "--user", "-u", "pmsd-god.service", "-n", "5", "--no-pager"], env,
                          check=False).stdout
                raise BenchError(f"god does not listen on {HOST}:{port} after `pmsd set metrics_listen` "
                                 f"({error}); its journal ends:\n{log}") from None
        time.sleep(0.05)


def check_scrape(text: str, names: Sequence[str], where: str) -> int:
    """The scrape has one pmsd_app_status series per app (of the bench's registry: `names`) and state, each app
    online; return the number of pmsd_app_status series."""
    found: dict[tuple[str, str], str] = {}
    series = 0
    for name, state, value in STATUS_SERIES.findall(text):
        series += 1
        if (name, state) in found:
            raise BenchError(f"{where}: pmsd_app_status of {name} state={state!r} twice")
        found[name, state] = value
    missing = [f"{name} state={state!r}" for name in names for state in STATES if (name, state) not in found]
    offline = [name for name in names if found.get((name, "online")) != "1"]
    apps = APPS_GAUGE.search(text)
    problems = [
        *([f"missing {len(missing)} pmsd_app_status series (first: {missing[:3]})"] if missing else []),
        *([f"{len(offline)} apps not online (first: {offline[:3]})"] if offline else []),
        *([f"{series} pmsd_app_status series, expected {len(names) * len(STATES)}"]
          if series != len(names) * len(STATES) else []),
        *([f"pmsd_apps is {apps.group(1) if apps else 'absent'}, expected {len(names)}"]
          if apps is None or int(apps.group(1)) != len(names) else []),
    ]
    if problems:
        raise BenchError(f"{where}: " + "; ".join(problems))
    return series


# ----------------------------------------------------------------------------------------------- god's CPU


@dataclass
class Window:
    label: str
    seconds: float  # wall time the window lasted
    cpu_s: float  # god's utime+stime over it
    scrapes: int = 0

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_s / self.seconds


def cpu_window(label: str, god_pid: Callable[[], int], seconds: int, scrape: Callable[[], object] | None) -> Window:
    """god's CPU over `seconds` of wall time; with `scrape`, one scrape at the start of each second (on a fixed
    schedule, so a slow scrape does not shift the next)."""
    pid = god_pid()
    began = time.monotonic()
    ticks = cpu_ticks(pid)
    scrapes = 0
    if scrape is not None:
        for k in range(seconds):
            time.sleep(max(0.0, began + k - time.monotonic()))
            scrape()
            scrapes += 1
    time.sleep(max(0.0, began + seconds - time.monotonic()))
    used = cpu_ticks(pid) - ticks
    elapsed = time.monotonic() - began
    if god_pid() != pid:
        raise BenchError(f"god's pid changed during the {label} window (was {pid}): it restarted")
    return Window(label, elapsed, used / CLK_TCK, scrapes)


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class Report:
    apps: int
    reps: int
    results: Results = field(default_factory=Results)
    windows: list[Window] = field(default_factory=list)
    body_bytes: int | None = None
    status_series: int | None = None
    god_pid: int | None = None
    rss_mib: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def median(self, label: str) -> float | None:
        return self.results.median("metrics", label)

    def cpu_per_scrape_ms(self) -> float | None:
        """(CPU while scraped - CPU idle) / scrapes: the windows are equally long."""
        if len(self.windows) != 2 or not self.windows[1].scrapes:
            return None
        idle, scraped = self.windows
        return 1e3 * (scraped.cpu_s - idle.cpu_s) / scraped.scrapes

    def ratios(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for row, num, den in RATIOS:
            a, b = self.median(num), self.median(den)
            out[row] = a / b if a is not None and b else None
        return out


def record(report: Report, label: str, measure: Callable[[], list[float]]) -> None:
    report.results.record("metrics", label, None, measure)
    item = report.results.get("metrics", label)
    if item is not None and item.error:
        report.errors.append(f"{label}: {item.error}")


def measure_timings(report: Report, pmsd: Manager, names: Sequence[str], port: int) -> None:
    """The CLI, HTTP and systemctl figures, each checked once against the apps it should show."""
    metrics_argv = [*pmsd.cli, "metrics"]
    check_scrape(run(metrics_argv, pmsd.env).stdout, names, CLI_METRICS)
    record(report, CLI_METRICS, lambda: measure_cmd(metrics_argv, pmsd.env, report.reps))
    record(report, CLI_JLIST, lambda: measure_cmd([*pmsd.cli, "jlist"], pmsd.env, report.reps))
    _, body = http_scrape(port)
    report.body_bytes = len(body)
    report.status_series = check_scrape(body.decode(), names, HTTP)
    record(report, HTTP, lambda: samples(report.reps, lambda _: http_scrape(port)[0]))
    floor = ["systemctl", "--user", "show", "-p", "MemoryCurrent", "-p", "CPUUsageNSec",
             *(f"pmsd-{name}.service" for name in names)]
    shown = run(floor, pmsd.env).stdout.count("MemoryCurrent=")
    if shown != len(names):
        raise BenchError(f"systemctl show printed {shown} MemoryCurrent lines for {len(names)} units")
    record(report, FLOOR, lambda: measure_cmd(floor, pmsd.env, report.reps))


def measure_god(report: Report, pmsd: Manager, port: int, seconds: int, before: Callable[[], None]) -> None:
    """god's RSS, its idle window (listener open, nobody scraping), `before` (the timings, outside both windows),
    then the scraped window and its RSS after."""
    god_pid = god_daemon(pmsd)
    report.god_pid = god_pid()
    report.rss_mib["before"] = rss_mib(report.god_pid)
    print(f"  god (pid {report.god_pid}): {seconds} s idle, nothing scraping ...", flush=True)
    report.windows.append(cpu_window("idle", god_pid, seconds, None))
    try:
        before()
    except (BenchError, subprocess.TimeoutExpired) as error:  # said in the report; god's scraped window still runs
        print(f"  FAILED: {error}", flush=True)
        report.errors.append(str(error))
    window_ms: list[float] = []
    print(f"  god: {seconds} s scraped once a second ...", flush=True)
    report.windows.append(cpu_window("scraped", god_pid, seconds, lambda: window_ms.append(http_scrape(port)[0])))
    report.results.items.append(Result("metrics", HTTP_WINDOW, None, window_ms))
    report.rss_mib["after"] = rss_mib(report.god_pid)


def measure(report: Report, pmsd: Manager, apps: Apps, prefix: str, seconds: int) -> None:
    """Inside god_serving: the apps, the listener, every figure; the listener and apps removed, also on failure."""
    names = [f"{prefix}-{k:03d}" for k in range(report.apps)]
    port = pick_ports(20000 + (os.getpid() * 7) % 9000, 1)[0]
    try:
        print(f"starting {report.apps} idle apps ...", flush=True)
        pmsd.bulk_start(apps, names)
        wait_online(pmsd, report.apps)  # jlist answered by god: it follows every app
        run([*pmsd.cli, "set", "metrics_listen", f"{HOST}:{port}"], pmsd.env)
        wait_listening(port, pmsd.env)
        time.sleep(SETTLE_S)  # start-up work must not count in the idle window
        measure_god(report, pmsd, port, seconds, lambda: measure_timings(report, pmsd, names, port))
    finally:
        run([*pmsd.cli, "unset", "metrics_listen"], pmsd.env, check=False)
        pmsd.delete_all()
        stop_leftover_units(f"pmsd-{prefix}-*", pmsd.env)


# ------------------------------------------------------------------------------------------------- report


def fmt(value: float | None, spec: str, width: int = 9) -> str:
    return format(value, spec).rjust(width) if value is not None else "-".rjust(width)


def print_report(report: Report, seconds: int) -> None:
    print(f"\n{report.apps} idle apps; medians of {report.reps} (after one warm-up), ms\n")
    for item in report.results.items:
        extra = f"   (median of {len(item.samples_ms)})" if item.label == HTTP_WINDOW else ""
        print(f"  {item.label:44s}{fmt(item.median_ms, '.1f')}" + ("  FAILED" if item.error else extra))
    if report.body_bytes is not None:
        print(f"  {'scrape body':44s}{fmt(report.body_bytes / 1024, '.1f')} KiB, "
              f"{report.status_series} pmsd_app_status series ({len(STATES)} states x {report.apps} apps)")
    print(f"\ngod (pid {report.god_pid}), windows of {seconds} s, % of one core")
    for window in report.windows:
        print(f"  {'CPU ' + window.label:44s}{fmt(window.cpu_percent, '.3f')} %"
              + (f"   ({window.scrapes} scrapes)" if window.scrapes else ""))
    print(f"  {'CPU per scrape (scraped - idle) / scrapes':44s}{fmt(report.cpu_per_scrape_ms(), '.2f')} ms"
          f"   (resolution {1e3 / CLK_TCK / max(seconds, 1):.2f} ms)")
    print(f"  {'RSS before / after the scrapes':44s}{fmt(report.rss_mib.get('before'), '.1f')} /"
          f"{fmt(report.rss_mib.get('after'), '.1f', 6)} MiB")
    print("\nratios of medians")
    for row, value in report.ratios().items():
        print(f"  {row:44s}{fmt(value, '.2f')}" + ("x" if value is not None else ""))
    for error in report.errors:
        print(f"FAILED: {error}")


def json_doc(report: Report, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "timings": [{"label": item.label, "median_ms": item.median_ms, "samples_ms": item.samples_ms,
                     "error": item.error} for item in report.results.items],
        "scrape": {"body_bytes": report.body_bytes, "status_series": report.status_series},
        "god": {"pid": report.god_pid, "rss_mib": report.rss_mib, "cpu_per_scrape_ms": report.cpu_per_scrape_ms(),
                "windows": [{"label": w.label, "seconds": w.seconds, "cpu_s": w.cpu_s, "cpu_percent": w.cpu_percent,
                             "scrapes": w.scrapes} for w in report.windows]},
        "ratios": report.ratios(),
        "errors": report.errors,
    }


# --------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=100, help="idle apps (default 100)")
    parser.add_argument("--reps", type=int, default=20, help="repetitions per timed figure (default 20)")
    parser.add_argument("--seconds", type=int, default=60, help="length of each god CPU window (default 60)")
    parser.add_argument("--json", type=Path, help="write every sample and figure here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = bench_env()
    become_subreaper()
    began, load_before = time.monotonic(), os.getloadavg()
    report = Report(args.apps, args.reps)
    with scratch_dir() as scratch:
        pmsd = find_pmsd(env, scratch / "state")
        if pmsd is None:
            raise SystemExit("pmsd is not usable; see above")
        with god_serving(pmsd):
            try:
                measure(report, pmsd, Apps(scratch / "apps"), f"mt{os.getpid()}", args.seconds)
            except (BenchError, OSError, subprocess.TimeoutExpired) as error:
                print(f"FAILED: {error}", flush=True)
                report.errors.append(str(error))
    reap_orphans()
    print_report(report, args.seconds)
    meta = {"apps": args.apps, "reps": args.reps, "seconds": args.seconds, "pmsd_cli": pmsd.cli,
            **machine_meta(began, load_before)}
    if args.json:
        args.json.write_text(json.dumps(json_doc(report, meta), indent=2) + "\n")
        print(f"JSON written to {args.json}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
