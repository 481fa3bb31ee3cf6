"""`pmsd describe`: one app in detail, PM2's rows plus where systemd keeps it."""

from __future__ import annotations

import datetime
import shlex

from pmsd.model.status import ProcessInfo
from pmsd.render.formats import memory, uptime
from pmsd.render.jlist import log_paths
from pmsd.systemd.names import cron_timer_unit
from pmsd.systemd.paths import scope_flag


def render(info: ProcessInfo, now_ms: int, user: bool, unit_file: str, log_notes: list[str], peak: str = "-") -> str:
    spec, scope = info.record.spec, scope_flag(user)
    created = datetime.datetime.fromtimestamp(info.record.created_at / 1000).isoformat(sep=" ", timespec="seconds")
    out_log, err_log, _ = log_paths(info.record.log_spec)
    rows = [
        ("status", str(info.status)),
        ("name", spec.name),
        ("namespace", spec.namespace),
        ("version", "N/A"),
        ("id", str(info.pm_id)),
        ("pid", str(info.pid)),
        ("restarts", str(info.restart_time)),
        ("unstable restarts", str(info.unstable_restarts)),
        ("uptime", uptime(info.uptime_since_ms, now_ms)),
        ("memory", memory(info.memory_bytes) + " (whole unit cgroup, children included)"),
        ("memory peak", peak),
        ("cpu", f"{info.cpu_percent:g}% (average since start)"),
        ("script path", spec.script),
        ("script args", shlex.join(spec.args)),
        ("error log path", err_log or "- (the journal: pmsd logs)"),
        ("out log path", out_log or "- (the journal: pmsd logs)"),
        ("interpreter", spec.interpreter),
        ("interpreter args", shlex.join(spec.interpreter_args)),
        ("exec cwd", spec.cwd),
        ("exec mode", f"{spec.exec_mode}_mode"),
        ("node env", spec.env.get("NODE_ENV", "N/A")),
        *_cluster_rows(info),
        ("autorestart", str(spec.autorestart).lower()),
        ("restart delay", f"{spec.restart_delay} ms"),
        ("max restarts", f"{spec.max_restarts} within min_uptime {spec.min_uptime} ms"),
        ("stop exit codes", " ".join(map(str, spec.stop_exit_codes)) or "-"),
        ("kill timeout", f"{spec.kill_timeout} ms (SIGINT, then SIGKILL)"),
        ("exp backoff", f"{spec.exp_backoff_restart_delay} ms, x1.5 per crash, at most 15 s (god); systemd "
         "alone restarts every 15 s" if spec.exp_backoff_restart_delay else "-"),
        ("max memory restart", f"{memory(spec.max_memory_restart)} of the whole unit (MemoryCurrent: the app "
         "and all its children), checked each second by god" if spec.max_memory_restart else "-"),
        ("memory max", f"{memory(spec.memory_max)} (MemoryMax=, enforced by the kernel)"
         if spec.memory_max else "-"),
        ("cron restart", f"{spec.cron_restart} (timer unit {cron_timer_unit(spec.name)})"
         if spec.cron_restart else "-"),
        ("watch", ", ".join(spec.watch) + (f" (ignoring {', '.join(spec.ignore_watch)}; delay "
                                           f"{spec.watch_delay} ms)") if spec.watch else "-"),
        ("last exit code", "-" if info.exit_code is None else str(info.exit_code)),
        ("created at", created),
        ("unit", info.unit),
        ("invocation id", info.invocation_id or "-"),
        ("logs", f"pmsd logs {shlex.quote(spec.name)}  |  journalctl {scope}-unit {shlex.quote(info.unit)}"),
    ]
    width = max(len(key) for key, _ in rows)
    out = [f"Describing process with id {info.pm_id} - name {spec.name}"]
    out += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    out.append("  logs:")
    out += [f"    {note}" for note in log_notes]
    if spec.env:
        out.append("  env (from the definition; the full environment: pmsd env " f"{info.pm_id})")
        out += [f"    {key}={value}" for key, value in sorted(spec.env.items())]
    out.append("  systemd unit (equivalent unit file):")
    out += [f"    {line}" if line else "" for line in unit_file.rstrip("\n").splitlines()]
    return "\n".join(out) + "\n"


def _cluster_rows(info: ProcessInfo) -> list[tuple[str, str]]:
    spec = info.record.spec
    if info.record.instance is None:
        return []
    return [
        ("instance", f"{info.record.instance} of {spec.instances} ({spec.instance_var}={info.record.instance})"),
        ("port", f"{spec.port} (systemd's socket unit, shared by every instance)" if spec.port else "-"),
        ("wait ready", f"yes: READY=1 within {spec.listen_timeout} ms (Type=notify)" if spec.wait_ready else "no"),
    ]
