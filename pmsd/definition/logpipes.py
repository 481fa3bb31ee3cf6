"""Log files written by god (PM2's file options done whole): the app's stdout and stderr go into pipes that
systemd holds open (a socket unit with ListenFIFO=, pmsd.log-<app>.socket), and god reads them and writes the
files: per stream, PM2's combined log_file, timestamps (time, log_date_format) or JSON records (log_type),
reopened on reloadLogs, rotated by size or age.

Why pipes held by systemd (README, "Log files"): the app writes to a pipe, never through a process of pmsd's;
the pipe lives in the socket unit, not in god, so lines written while god restarts, is killed or upgraded wait
in it (up to PipeSize=: 1 MiB, 16 MiB for the system manager) and reach the files afterwards, in order; a
line arriving while nothing holds the socket starts its holder, which pulls god in (Wants=). Apps without files
pay nothing: their output goes to the journal as before. Each instance of a multi-instance app has its own
socket (pmsd.log-<app>@<n>.socket) and files (pmsd.model.record.AppRecord.log_spec).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pmsd.definition.unitvalues import literal
from pmsd.model.spec import DISCARD, AppSpec
from pmsd.systemd.names import escape_name
from pmsd.systemd.paths import runtime_dir

LOG_SOCKET_PREFIX = "pmsd.log-"
STREAMS = ("out", "err")
# The pipe's buffer: what an app can write while god is away before its write() waits. Linux caps it at
# /proc/sys/fs/pipe-max-size for unprivileged managers (1 MiB by default; systemd only warns above it); the
# system manager (CAP_SYS_RESOURCE) may go beyond (fcntl(2), F_SETPIPE_SZ). Pages are used as lines wait.
USER_PIPE_SIZE = 1 << 20
SYSTEM_PIPE_SIZE = 16 << 20


def _log_unit_stem(name: str, instance: int | None) -> str:
    return f"{LOG_SOCKET_PREFIX}{escape_name(name)}" + (f"@{instance}" if instance is not None else "")


def log_socket_unit(name: str, instance: int | None = None) -> str:
    """The app's (or one instance's) log socket. An instance's is a plain unit file whose name has an instance
    part, with no template behind it, which systemd accepts (systemd.unit(5))."""
    return f"{_log_unit_stem(name, instance)}.socket"


def log_holder_unit(name: str, instance: int | None = None) -> str:
    """The socket's service (the same name: systemd's default Service=), which does nothing."""
    return f"{_log_unit_stem(name, instance)}.service"


def pipes_dir(user: bool, environ: Mapping[str, str]) -> str:
    """Not god's RuntimeDirectory (removed when god stops): the pipes outlive god."""
    return os.path.join(runtime_dir(environ), "pmsd-logs") if user else "/run/pmsd-logs"


def log_sinks(spec: AppSpec) -> dict[str, tuple[str, ...]]:
    """The files each stream goes to, as PM2 writes them: out_file, error_file, and log_file (both streams,
    next to the other two). A stream with no file is not in the result (it goes to the journal)."""
    if spec.disable_logs:
        return {}
    combined = (spec.log_file,) if spec.log_file and spec.log_file != DISCARD else ()
    sinks = {}
    for stream, own in (("out", spec.out_file), ("err", spec.error_file)):
        files = ((own,) if own and own != DISCARD else ()) + combined
        if files:
            sinks[stream] = files
    return sinks


def pipe_paths(spec: AppSpec, user: bool, environ: Mapping[str, str], instance: int | None = None
               ) -> dict[str, str]:
    """The pipe of each stream that goes to files (of the app, or of one of its instances)."""
    sinks = log_sinks(spec)
    if not sinks:  # the journal takes both streams (the default): no path to build, for each of 1,000 apps
        return {}
    base = os.path.join(pipes_dir(user, environ), escape_name(spec.name))
    if instance is not None:
        base += f"@{instance}"
    return {stream: f"{base}.{stream}" for stream in sinks}


def existing_pipes(spec: AppSpec, user: bool, environ: Mapping[str, str], instance: int | None = None
                   ) -> dict[str, str]:
    """The app's pipes when god writes its files (they exist: pmsd.api.logpipes made them); empty otherwise."""
    pipes = pipe_paths(spec, user, environ, instance)
    return pipes if pipes and all(os.path.exists(path) for path in pipes.values()) else {}


def render_log_units(name: str, pipes: Mapping[str, str], god_unit: str, user: bool = True,
                     instance: int | None = None) -> dict[str, str]:
    """The socket unit holding the pipes, and its do-nothing service: a socket whose Service= is already
    running refuses to start (socket_start() in src/core/socket.c), so the service cannot be god itself; it
    pulls god in (Wants=) when a line arrives while nothing has started it yet."""
    listen = "".join(f"ListenFIFO={literal(path)}\n" for path in pipes.values())
    socket_unit, holder_unit = log_socket_unit(name, instance), log_holder_unit(name, instance)
    whose = escape_name(name) + (f" instance {instance}" if instance is not None else "")
    socket = f"""# Written by pmsd: the log pipes of an app, held open by systemd so that lines wait here while god
# (which writes them to the app's files) is away.
[Unit]
Description=pmsd app {whose}: log pipes

[Socket]
{listen}SocketMode=0600
DirectoryMode=0700
PipeSize={USER_PIPE_SIZE if user else SYSTEM_PIPE_SIZE}
RemoveOnStop=yes
"""
    holder = f"""# Written by pmsd: keeps {socket_unit} in its "running" state (systemd.socket(5), Service=).
[Unit]
Description=pmsd app {whose}: log pipes holder
BindsTo={socket_unit}
After={socket_unit}
Wants={god_unit}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
"""
    return {socket_unit: socket, holder_unit: holder}
