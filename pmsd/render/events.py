"""god's process events as one line each, for `pmsd events`."""

from __future__ import annotations

import time

from pmsd.model.events import Event


def describe(event: Event) -> str:
    """One line, in the spirit of PM2's own log lines ("App [api:0] exited with code [1] via signal [SIGINT]")."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.at_ms / 1000))
    stamp += f".{event.at_ms % 1000:03d}"
    app = f"[{event.app}:{event.pm_id}]"
    d = event.details
    if event.event == "exit":
        how = f"signal [{d['signal']}]" if d.get("signal") else f"code [{d.get('code')}]"
        text = f"App {app} exited with {how} after {d.get('uptime_ms', 0)} ms"
        if d.get("manually"):
            text += " (stopped)"
    elif event.event == "online":
        text = f"App {app} online (pid {d.get('pid')})"
    elif event.event == "restart":
        text = f"App {app} restarted ({d.get('reason', 'crash')}), restart count {d.get('restart_time')}"
    elif event.event == "waiting restart":
        text = f"App {app} will restart in {d.get('delay_ms')} ms"
    elif event.event == "errored":
        text = f"App {app} errored: too many unstable restarts, left down"
    elif event.event == "memory restart":
        text = (f"App {app} restarted: memory {d.get('memory_bytes')} bytes exceeds max_memory_restart "
                f"{d.get('limit_bytes')}")
    elif event.event == "watch restart":
        paths = d.get("paths") or []
        text = f"App {app} restarted: files changed ({', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''})"
    elif event.event == "cron restart":
        text = f"App {app} restarted by its cron pattern {d.get('pattern', '')}".rstrip()
    else:
        text = f"App {app} {event.event}"
    return f"{stamp} {text}"
