#!/usr/bin/env python3
"""Log files benchmark (issue 16): PM2 writing `-o` files vs pmsd's god writing them vs pmsd on the journal.

    python3 tests/bench/bench_logfiles.py [--lines 200000] [--json PATH]

Measures, in one run (about a minute):
  burst     an app writes LINES lines as fast as it can (chunks of 1,000, flushed): seconds until every line
            is in the file (or the journal), lines kept, and the app's own slowest and p99 write() of a chunk
            while the writer is busy;
  kill -9   the same lines paced over about a second (2 ms between chunks), the manager's daemon killed
            (kill -9) a third of the way in: lines kept;
  rotate    pmsd only: the burst with --log-max-size set for at least 10 rotations: lines kept, in order,
            across the rotated files (PM2 needs its pm2-logrotate module for this, which is not installed);
  tail      `logs APP --lines 1000 --nostream` of the file-logging app (median of 5).

Not a pytest test: prints a table and, with --json, writes the figures. Reuses bench_core.py's plumbing.
god serves one registry per manager: the bench points the user manager's PMSD_STATE_DIR at its own scratch
state for the run (as tests/e2e/test_god.py does) and puts it back at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.bench_core import (
    PYTHON,
    Manager,
    become_subreaper,
    bench_env,
    find_pmsd,
    god_serving,
    machine_meta,
    pm2_version,
    reap_orphans,
    run,
    scratch_dir,
    setup_pm2,
)

GOD = "pmsd-god.service"
TIMEOUT_S = 120.0
APP = """\
import os, sys, time
count, stats, pause = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
waits = []
for start in range(0, count, 1000):
    chunk = "".join(f"burst {n:07d}\\n" for n in range(start, min(count, start + 1000)))
    began = time.perf_counter()
    sys.stdout.write(chunk)
    sys.stdout.flush()
    waits.append(time.perf_counter() - began)
    if pause:
        time.sleep(pause)
with open(stats + ".tmp", "w") as f:
    f.write(" ".join(f"{w:.6f}" for w in waits))
os.rename(stats + ".tmp", stats)
time.sleep(3600)
"""
LINE = re.compile(rb"burst (\d{7})")


def kept(paths: list[Path]) -> list[int]:
    numbers: list[int] = []
    for path in paths:
        if path.exists():
            numbers += [int(m.group(1)) for m in LINE.finditer(path.read_bytes())]
    return numbers


def journal_kept(unit: str, env: dict[str, str]) -> list[int]:
    out = subprocess.run(["journalctl", "--user-unit", unit, "-o", "cat", "--no-pager"], env=env,
                         capture_output=True, timeout=60).stdout
    return [int(m.group(1)) for m in LINE.finditer(out)]


def wait_count(count: Any, expected: int, timeout: float = TIMEOUT_S) -> tuple[list[int], float]:
    """Poll until `expected` lines or until the count stops growing for 3 s; (lines, seconds)."""
    began = time.monotonic()
    last, last_change = -1, began
    while True:
        lines = count()
        now = time.monotonic()
        if len(lines) >= expected or now - last_change > 3 or now - began > timeout:
            return lines, now - (last_change if len(lines) < expected else began)
        if len(lines) != last:
            last, last_change = len(lines), now
        time.sleep(0.02)


def write_waits(stats: Path) -> dict[str, float]:
    deadline = time.monotonic() + TIMEOUT_S
    while not stats.exists():
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.05)
    waits = sorted(float(w) for w in stats.read_text().split())
    return {"max_ms": waits[-1] * 1000, "p99_ms": waits[int(len(waits) * 0.99) - 1] * 1000,
            "total_s": sum(waits)}


def daemon_pid(label: str, mgr: Manager) -> int:
    if label == "pm2":
        home = Path(mgr.env["PM2_HOME"])
        return int((home / "pm2.pid").read_text())
    out = run(["systemctl", "--user", "show", "-P", "MainPID", GOD], mgr.env).stdout
    return int(out.strip() or 0)


def burst(label: str, mgr: Manager, root: Path, lines: int, mode: str, kill: bool = False,
          extra: tuple[str, ...] = ()) -> dict[str, Any]:
    # The pid in the name: the journal keeps earlier runs' lines of a unit of the same name.
    name = f"lf{os.getpid()}-{label}-{mode}{'-kill' if kill else ''}"
    app = root / f"{name}.py"
    app.write_text(APP)
    stats = root / f"{name}.stats"
    out = root / "logs" / f"{name}.log"
    files = () if mode == "journal" else ("-o", str(out))
    began = time.monotonic()
    run([*mgr.cli, "start", str(app), "--name", name, "--interpreter", PYTHON, *files, *extra, "--",
         str(lines), str(stats), "0.002" if kill else "0"], mgr.env)
    if kill:
        while len(kept([out])) < lines // 3 and time.monotonic() - began < TIMEOUT_S:
            time.sleep(0.005)
        os.kill(daemon_pid(label, mgr), signal.SIGKILL)
    if mode == "journal":
        found, _ = wait_count(lambda: journal_kept(f"pmsd-{name}.service", mgr.env), lines)
    elif mode == "rotate":
        found, _ = wait_count(lambda: kept([*sorted(out.parent.glob(f"{name}__*")), out]), lines)
    else:
        found, _ = wait_count(lambda: kept([out]), lines)
    seconds = time.monotonic() - began
    result = {"kept": len(found), "in_order": found == list(range(len(found))), "seconds": round(seconds, 2),
              **write_waits(stats)}
    if mode == "rotate":
        result["rotations"] = len(list(out.parent.glob(f"{name}__*")))
    if mode != "journal" and not kill:
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            run([*mgr.cli, "logs", name, "--lines", "1000", "--nostream"], mgr.env)
            samples.append((time.perf_counter() - start) * 1000)
        result["tail_1000_ms"] = round(statistics.median(samples), 1)
    run([*mgr.cli, "delete", name], mgr.env, check=False)
    print(f"  {label} {mode}{' kill -9' if kill else ''}: {result}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = bench_env()
    become_subreaper()
    began, load = time.monotonic(), os.getloadavg()
    results: dict[str, Any] = {}
    with scratch_dir() as scratch:
        (scratch / "logs").mkdir()
        pm2 = setup_pm2(scratch, env)
        try:
            run([*pm2.cli, "ping"], pm2.env)
            results["pm2 file"] = burst("pm2", pm2, scratch, args.lines, "file")
            results["pm2 file, kill -9"] = burst("pm2", pm2, scratch, args.lines, "file", kill=True)
        finally:
            pm2.kill()
        state = scratch / "state"
        pmsd = find_pmsd(env, state)
        if pmsd is None:
            return 1
        pmsd.env = {**pmsd.env, "PMSD_STATE_DIR": str(state)}
        pmsd.env.pop("PMSD_NO_GOD", None)
        with god_serving(pmsd):
            try:
                results["pmsd file (god)"] = burst("pmsd", pmsd, scratch, args.lines, "file")
                results["pmsd file, kill -9 god"] = burst("pmsd", pmsd, scratch, args.lines, "file", kill=True)
                size = max(4096, args.lines * 14 // 14)  # 14-byte lines: about 13 rotations
                results["pmsd file, 10+ rotations"] = burst("pmsd", pmsd, scratch, args.lines, "rotate",
                                                            extra=("--log-max-size", str(size)))
                results["pmsd journal"] = burst("pmsd", pmsd, scratch, args.lines, "journal")
            finally:
                run([*pmsd.cli, "delete", "all"], pmsd.env, check=False)
    reap_orphans()
    print(f"\n{args.lines} lines, one run. PM2 {pm2_version()}.")
    print(f"{'':28s}{'kept':>9s}{'seconds':>9s}{'max write':>11s}{'p99 write':>11s}{'tail 1000':>11s}")
    for label, r in results.items():
        print(f"  {label:26s}{r['kept']:9d}{r['seconds']:9.2f}{r.get('max_ms', 0):9.1f}ms"
              f"{r.get('p99_ms', 0):9.1f}ms{r.get('tail_1000_ms', 0):9.1f}ms"
              + ("" if r["in_order"] else "  OUT OF ORDER") + (f"  {r['rotations']} rotations" if "rotations" in r
                                                               else ""))
    meta = machine_meta(began, load)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
