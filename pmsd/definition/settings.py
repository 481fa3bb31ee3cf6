"""The settings table: every PM2 option pmsd honours, declared once.

Each row says how the option is parsed and validated, its default, its help text, and which systemd
directives it drives: the unit-file directive, its D-Bus property name and signature (the two differ:
`RestartSec=` travels as `RestartUSec`, type `t`, in microseconds; systemd's own mapping is
src/shared/bus-unit-util.c), the minimum systemd version, and whether it only makes sense for the system
manager. Ecosystem validation (pmsd.definition.build), `pmsd start`'s flags and their help
(pmsd.cli.grammar), transient properties and unit-file rendering (pmsd.definition.units) are all derived
from this table.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The value parsers live in pmsd.definition.parsers; every public name there is re-exported from here, the
# table's module, so `from pmsd.definition.settings import parse_port` keeps working.
from pmsd.definition.parsers import MAX_INSTANCES as MAX_INSTANCES
from pmsd.definition.parsers import MS_MAX as MS_MAX
from pmsd.definition.parsers import U32_MAX as U32_MAX
from pmsd.definition.parsers import ValueHint as ValueHint
from pmsd.definition.parsers import describe_value as describe_value
from pmsd.definition.parsers import parse_argv as parse_argv
from pmsd.definition.parsers import parse_argv_list as parse_argv_list
from pmsd.definition.parsers import parse_bool as parse_bool
from pmsd.definition.parsers import parse_count as parse_count
from pmsd.definition.parsers import parse_cron as parse_cron
from pmsd.definition.parsers import parse_duration_ms as parse_duration_ms
from pmsd.definition.parsers import parse_env as parse_env
from pmsd.definition.parsers import parse_env_name as parse_env_name
from pmsd.definition.parsers import parse_exec_mode as parse_exec_mode
from pmsd.definition.parsers import parse_exit_codes as parse_exit_codes
from pmsd.definition.parsers import parse_filter_env as parse_filter_env
from pmsd.definition.parsers import parse_instances as parse_instances
from pmsd.definition.parsers import parse_log_file as parse_log_file
from pmsd.definition.parsers import parse_log_type as parse_log_type
from pmsd.definition.parsers import parse_memory_bytes as parse_memory_bytes
from pmsd.definition.parsers import parse_patterns as parse_patterns
from pmsd.definition.parsers import parse_port as parse_port
from pmsd.definition.parsers import parse_positive_duration_ms as parse_positive_duration_ms
from pmsd.definition.parsers import parse_seconds_ms as parse_seconds_ms
from pmsd.definition.parsers import parse_str as parse_str
from pmsd.definition.parsers import parse_text as parse_text
from pmsd.definition.parsers import parse_user_group as parse_user_group
from pmsd.definition.parsers import parse_watch as parse_watch
from pmsd.definition.parsers import port_number as port_number
from pmsd.definition.preload import NODE_PRELOAD
from pmsd.definition.unitvalues import env_file_problem, exec_argv, exec_line, exec_word, glob_escape, literal
from pmsd.errors import UsageError
from pmsd.model.spec import DISCARD, UnitInputs, stderr_file, stdout_file

SYSTEMD_FLOOR = 252  # Debian 12; the oldest manager pmsd supports
LOG_RATE_LIMIT_INTERVAL_USEC = 30_000_000
LOG_RATE_LIMIT_BURST = 250_000  # 25x journald's default: a 200,000-line burst is kept whole
# PM2's exponential backoff: the first delay, then x1.5 per crash, capped here; a run of 30 s resets it.
EXP_BACKOFF_CAP_MS = 15_000
EXP_BACKOFF_RESET_MS = 30_000
USEC_MAX = 2**64 - 2  # the longest finite time systemd takes (UINT64_MAX is USEC_INFINITY, "never")

# ---------------------------------------------------------------------------------------- directives


@dataclass(frozen=True)
class Directive:
    """One systemd setting: how pmsd computes it and how it is spelled in a unit file and on D-Bus."""

    name: str  # unit-file directive, e.g. "RestartSec"
    dbus_name: str  # D-Bus property, e.g. "RestartUSec"
    signature: str  # D-Bus signature, e.g. "t"
    encode: Callable[[UnitInputs], Any]  # value on the bus, or None to leave systemd's default
    render: Callable[[Any], str]  # unit-file text for the bus value
    min_version: int = SYSTEMD_FLOOR
    system_only: bool = False  # only meaningful for the system manager (User=, Group=)
    unit_type: str = "service"  # "socket": a cluster app's socket unit (pmsd-<app>.socket), never transient
    repeated: bool = False  # a list value is one line per element (ListenStream=), rendered one by one


def _usec_text(usec: int) -> str:
    return f"{usec // 1000}ms" if usec % 1_000_000 else f"{usec // 1_000_000}s"


# Every value from a definition is checked (pmsd.definition.parsers, pmsd.definition.build) before it gets here;
# rendering only writes it the way systemd reads it back (pmsd.definition.unitvalues).
_literal = literal  # "%" doubled: plain values (Description=, WorkingDirectory=, User=, append:PATH)


def _exec_text(value: list[tuple[str, list[str], bool]]) -> str:
    path, argv, _ = value[0]
    # argv is already as systemd takes it ("$" doubled, _exec_start); the line quotes each word.
    return exec_line(path, argv)


def check_env_file(path: str) -> None:
    """An env file lives under pmsd's state directory (PMSD_STATE_DIR, XDG_STATE_HOME), which must be one systemd
    can name in EnvironmentFile=."""
    problem = env_file_problem(path)
    if problem is not None:
        raise UsageError(f"pmsd's environment file {problem}",
                         "set PMSD_STATE_DIR (or XDG_STATE_HOME) to a plain absolute path")


def _env_files(inputs: UnitInputs) -> list[tuple[str, bool]]:
    """EnvironmentFile= is a glob (unitvalues): the path is escaped so that it matches only itself."""
    if inputs.env_file:  # check_scope renders without one
        check_env_file(inputs.env_file)
    return [(glob_escape(inputs.env_file), False)]


def _start_limit_burst(inputs: UnitInputs) -> int:
    # PM2 marks an app errored after max_restarts unstable (shorter than min_uptime) exits. systemd's
    # equivalent, enforced even when god is down, is the start rate limit: at most burst starts in interval,
    # so the max_restarts-th quick exit leaves the unit failed. A burst of 0 would disable the limit
    # (ratelimit_below() in src/basic/ratelimit.c), hence at least 1.
    return max(1, inputs.spec.max_restarts)


def _start_limit_interval(inputs: UnitInputs) -> int:
    # burst starts of runs shorter than min_uptime (plus the restart delay between them) fit in
    # burst * (min_uptime + restart_delay); runs that last at least min_uptime never do. min_uptime 0 gives
    # interval 0, which systemd reads as "no limit", matching PM2 (no exit is unstable then). With
    # exponential backoff the first delay is the shortest gap god leaves between starts.
    # Each delay fits a uint64 in microseconds, their product with the burst need not: past USEC_MAX it is
    # USEC_MAX, longer than any machine runs.
    spec = inputs.spec
    first_delay = spec.exp_backoff_restart_delay or spec.restart_delay
    return min(USEC_MAX, _start_limit_burst(inputs) * (spec.min_uptime + first_delay) * 1000)


def _exec_start(inputs: UnitInputs) -> list[tuple[str, list[str], bool]]:
    argv = list(inputs.spec.argv)
    if is_node(inputs.spec.interpreter):
        # pmsd's preload gives unmodified Node apps what PM2's cluster mode and IPC channel gave them: listen()
        # on the app's port takes the socket systemd passed, and process.send('ready') notifies systemd.
        argv[1:1] = ["--require", NODE_PRELOAD]
    # systemd replaces $NAME and ${NAME} in argv when it executes the program (unitvalues); PM2 does not.
    return [(inputs.spec.exec_path, exec_argv(argv), False)]


def is_node(interpreter: str) -> bool:
    return interpreter != "none" and os.path.basename(interpreter) in ("node", "nodejs")


def _listen_env(inputs: UnitInputs) -> list[str] | None:
    """What the Node preload reads: the ports of the inherited sockets, in their order (fd 3, 4, ...), and
    whether to report ports the app listens on that no inherited socket serves (pmsd.state.ports)."""
    env = []
    if inputs.listen:
        env.append("PMSD_LISTEN_PORTS=" + ",".join(str(port_number(address)) for address in inputs.listen))
    if inputs.discover_ports:
        env.append("PMSD_DISCOVER_PORTS=1")
    return env or None


def _non_blocking(inputs: UnitInputs) -> bool | None:
    """NonBlocking=yes for the instances of a Node cluster app with a socket (and its holder, unitfiles.py).

    All of them share one open file description of the listening socket, and O_NONBLOCK belongs to that
    description, not to an fd. libuv sets it when Node takes the fd (uv_tcp_open); systemd, with its default
    NonBlocking=no, clears it again in every process it starts with the socket (flags_fds() in
    src/core/execute.c), so each instance started beside running ones leaves the socket blocking until that new
    Node sets it back. libuv before 1.45 (Node 18) accepts in a loop until EAGAIN: a running instance that
    drains the queue meanwhile blocks in accept(2) with the connection it just took still unread, until
    another connection comes. systemd.service(5) on NonBlocking=: every service sharing a socket must use the
    same setting, and service code must not change the flag; with yes, systemd and libuv agree."""
    spec = inputs.spec
    return True if inputs.listen and spec.clustered and is_node(spec.interpreter) else None


def _listen_streams(inputs: UnitInputs) -> list[tuple[str, str]] | None:
    # One ListenStream= per address: systemd passes the fds in the order of these lines (fd 3, 4, ...).
    return [("Stream", address) for address in inputs.listen] or None


def _notify_access(inputs: UnitInputs) -> str | None:
    # READY=1 (wait_ready) and the preload's STATUS= (port discovery) come from systemd-notify, a child.
    return "all" if inputs.spec.wait_ready or inputs.discover_ports else None


def _preload_env(inputs: UnitInputs) -> list[str] | None:
    """Environment= for what the Node preload reads: the port variables (_listen_env),
    PMSD_SHUTDOWN_WITH_MESSAGE, which has it turn the stop signal into PM2's 'shutdown' message, and
    PMSD_READY_AFTER_MS, when it calls a wait_ready app ready that has not said so (_start_timeout_usec).
    None of them is secret (unit properties are readable over D-Bus; the app's env is in its EnvironmentFile=)."""
    env = [*(_listen_env(inputs) or [])]
    if inputs.spec.shutdown_with_message:
        env.append("PMSD_SHUTDOWN_WITH_MESSAGE=1")
    if inputs.spec.wait_ready and is_node(inputs.spec.interpreter):
        env.append(f"PMSD_READY_AFTER_MS={inputs.spec.listen_timeout}")
    return env or None


# How much longer than listen_timeout systemd waits for a Node app's READY=1: the preload sends it at
# listen_timeout at the latest, through systemd-notify, a process of its own to start.
NODE_READY_MARGIN_MS = 5000


def _start_timeout_usec(inputs: UnitInputs) -> int | None:
    """TimeoutStartSec= for wait_ready apps. PM2 calls an app online after listen_timeout, ready or not; a Node
    app's preload does the same (PMSD_READY_AFTER_MS), so systemd only fails a start that not even that ended.
    Other languages must send READY=1 themselves within listen_timeout, or systemd fails the start."""
    spec = inputs.spec
    if not spec.wait_ready:
        return None
    margin = NODE_READY_MARGIN_MS if is_node(spec.interpreter) else 0
    return (spec.listen_timeout + margin) * 1000


def _pwd_env(inputs: UnitInputs) -> list[str]:
    """PWD is the app's cwd: what a shell started there gives `node app.js`. systemd sets none (systemd.exec(5),
    "Environment Variables in Spawned Processes") and the caller's is left out of the env file
    (pmsd.definition.environment); the env file is applied after Environment=, so a definition's env.PWD wins,
    as in PM2. A line of its own: systemd appends each Environment= (and each such D-Bus property) to the list."""
    return [f"PWD={inputs.spec.cwd}"]


def _env_text(value: list[str]) -> str:
    return " ".join(exec_word(assignment) for assignment in value)  # quoted as systemd splits the line


def _restart_usec(inputs: UnitInputs) -> int:
    # With exponential backoff, god restarts the app early (TryRestartUnit) once the current delay has
    # passed; systemd's own timer is the cap, so while god is down a crash loop runs at PM2's slowest pace.
    spec = inputs.spec
    return (EXP_BACKOFF_CAP_MS if spec.exp_backoff_restart_delay else spec.restart_delay) * 1000


def _memory_max(inputs: UnitInputs) -> int | None:
    return inputs.spec.memory_max


def _stdout_path(inputs: UnitInputs) -> str | None:
    """Where systemd appends stdout: god's pipe, or the file itself; None for a descriptor or the journal."""
    if "out" in inputs.log_fds:
        return None
    return inputs.log_pipes.get("out") if inputs.log_pipes else stdout_file(inputs.spec)


def _stderr_path(inputs: UnitInputs) -> str | None:
    if "err" in inputs.log_fds:
        return None
    return inputs.log_pipes.get("err") if inputs.log_pipes else stderr_file(inputs.spec)


def _stdout_kind(inputs: UnitInputs) -> str | None:
    spec = inputs.spec
    if spec.disable_logs or (spec.out_file == DISCARD and "out" not in inputs.log_pipes):
        return "null"
    return None


def _stderr_kind(inputs: UnitInputs) -> str | None:
    spec = inputs.spec
    if spec.disable_logs or (spec.error_file == DISCARD and "err" not in inputs.log_pipes):
        return "null"
    # StandardError= defaults to "inherit", i.e. wherever stdout goes: when only stdout goes to a file, a pipe
    # (or nowhere), stderr must be sent to the journal explicitly.
    if inputs.log_pipes:
        out_elsewhere = "out" in inputs.log_pipes or bool(_stdout_kind(inputs))
        err_elsewhere = "err" in inputs.log_pipes
    else:
        out_elsewhere, err_elsewhere = bool(stdout_file(spec) or _stdout_kind(inputs)), bool(stderr_file(spec))
    return "journal" if out_elsewhere and not err_elsewhere else None


@dataclass(frozen=True)
class Setting:
    """One PM2 option as pmsd understands it."""

    key: str
    parse: Callable[[object], Any]
    default: Any
    help: str
    directives: tuple[Directive, ...] = ()
    aliases: tuple[str, ...] = ()
    flag: str | None = None  # the `pmsd start` flag, when PM2 has one
    short: str | None = None  # its one-letter form, as PM2 spells it
    flag_help: str | None = None  # help for the flag when it reads differently from the option (negations)
    switch: bool = False  # the flag takes no value even though the option is not a boolean
    more_flags: tuple[str, ...] = ()  # further spellings of the flag (PM2's --cron beside --cron-restart)
    optional: str | None = None  # the flag's value may be left out (PM2's `--watch [paths]`): this one then
    variadic: bool = False  # the flag takes every following value (PM2's `--stop-exit-codes <codes...>`)
    flag_parse: Callable[[str], Any] | None = None  # the flag's value, when PM2 reads it unlike the option
    by_god: bool = False  # enforced by the god daemon (pmsd-god.service), not by a systemd directive


def _const(value: object) -> Callable[[UnitInputs], object]:
    return lambda _inputs: value


SETTINGS: tuple[Setting, ...] = (
    Setting("name", parse_str, None, "App name; defaults to the script's name without extension.",
            (Directive("Description", "Description", "s", lambda i: f"pmsd app {i.spec.name}", _literal),
             Directive("SyslogIdentifier", "SyslogIdentifier", "s", lambda i: i.spec.name, _literal)),
            flag="--name", short="-n"),
    Setting("script", parse_text, None, "Script or command to run (a file path, or a program on PATH).",
            (Directive("ExecStart", "ExecStart", "a(sasb)", _exec_start, _exec_text),
             # Type=exec: the start job finishes once execve() succeeded, so `pmsd start` reports a
             # program that cannot run, and returns only when the app's own code is running. wait_ready
             # apps are Type=notify: started once they send READY=1.
             Directive("Type", "Type", "s", lambda i: "notify" if i.spec.wait_ready else "exec", str),
             # PM2 stops apps with SIGINT, then SIGKILL after kill_timeout.
             Directive("KillSignal", "KillSignal", "i", _const(int(signal.SIGINT)), lambda v: "SIGINT"),
             Directive("SendSIGKILL", "SendSIGKILL", "b", _const(True), lambda v: "yes" if v else "no"),
             # journald's default of 10,000 lines per 30 s per unit loses lines PM2 would have kept. For
             # system units a per-unit limit works; user units are limited as their manager's
             # user@UID.service and ignore these (README, "Logs: no silent loss").
             Directive("LogRateLimitIntervalSec", "LogRateLimitIntervalUSec", "t",
                       lambda i: LOG_RATE_LIMIT_INTERVAL_USEC if i.system else None, _usec_text),
             Directive("LogRateLimitBurst", "LogRateLimitBurst", "u",
                       lambda i: LOG_RATE_LIMIT_BURST if i.system else None, str)),
            # PM2's schema.json names `exec`; lib/Common.js (verifyConfs) also takes `cmd` and `command`.
            aliases=("exec", "cmd", "command")),
    Setting("args", parse_argv, (), "Arguments passed to the script (a list, or one string).",
            flag="-- <args>"),
    Setting("interpreter", parse_text, None,
            "Program that runs the script; 'none' runs it directly. Chosen by extension when unset.",
            aliases=("exec_interpreter",), flag="--interpreter"),
    Setting("interpreter_args", parse_argv, (), "Arguments for the interpreter.",
            aliases=("node_args",), flag="--interpreter-args"),
    Setting("cwd", parse_text, None, "Working directory; defaults to the ecosystem file's directory or the "
            "current directory.",
            (Directive("WorkingDirectory", "WorkingDirectory", "s", lambda i: i.spec.cwd, _literal),
             Directive("Environment", "Environment", "as", _pwd_env, _env_text)),
            flag="--cwd"),
    Setting("namespace", parse_text, "default", "Namespace the app belongs to.", flag="--namespace"),
    Setting("env", parse_env, {}, "Environment variables, layered over the environment `pmsd start` ran in. "
            "Kept in an owner-only file (EnvironmentFile=), never in unit properties, which any local user "
            "can read over D-Bus.",
            (Directive("EnvironmentFile", "EnvironmentFiles", "a(sb)", _env_files, lambda v: _literal(v[0][0])),)),
    # PM2 (lib/Common.js, prepareAppConf) drops the caller's variables whose names contain one of the strings;
    # the definition's env and PM2's own variables (pm_id, name, namespace, NODE_APP_INSTANCE) are added after.
    Setting("filter_env", parse_filter_env, False, "Leave out the environment `pmsd start` ran in: true drops "
            "all of it, strings (a list, or 'A,B') drop its variables whose names contain one of them. The "
            "definition's env and PM2's own variables are kept. An app run as another user never gets it anyway."),
    Setting("autorestart", parse_bool, True, "Restart the app whenever it exits (except stop_exit_codes).",
            (Directive("Restart", "Restart", "s", lambda i: "always" if i.spec.autorestart else "no", str),),
            flag="--no-autorestart", flag_help="Do not restart the app when it exits."),
    Setting("restart_delay", parse_duration_ms, 0, "Milliseconds between an exit and the restart. 0 is "
            "really immediate (systemd's own default is 100 ms).",
            (Directive("RestartSec", "RestartUSec", "t", _restart_usec, _usec_text),),
            flag="--restart-delay"),
    Setting("exp_backoff_restart_delay", parse_duration_ms, 0, "First delay (ms) of PM2's exponential backoff: "
            "x1.5 after each crash, at most 15 s, back to the first after 30 s of uptime. god times the "
            "restarts; while god is down systemd still restarts the app every 15 s (RestartSec=).",
            flag="--exp-backoff-restart-delay", by_god=True),
    Setting("max_restarts", parse_count, 16, "Unstable restarts (runs shorter than min_uptime) allowed "
            "before the app is marked errored and left down.",
            (Directive("StartLimitBurst", "StartLimitBurst", "u", _start_limit_burst, str),),
            flag="--max-restarts"),
    Setting("min_uptime", parse_duration_ms, 1000, "A run shorter than this (ms, or '2s', '1m') is unstable.",
            (Directive("StartLimitIntervalSec", "StartLimitIntervalUSec", "t", _start_limit_interval,
                       _usec_text),),
            flag="--min-uptime"),
    Setting("stop_exit_codes", parse_exit_codes, (), "Exit codes after which the app is not restarted.",
            (Directive("RestartPreventExitStatus", "RestartPreventExitStatus", "(aiai)",
                       lambda i: (list(i.spec.stop_exit_codes), []) if i.spec.stop_exit_codes else None,
                       lambda v: " ".join(str(code) for code in v[0])),),
            flag="--stop-exit-codes", variadic=True,
            flag_help="Exit codes after which the app is not restarted (one or more: 0 3, or 0,3)."),
    Setting("kill_timeout", parse_positive_duration_ms, 1600, "Milliseconds between SIGINT and SIGKILL on stop.",
            (Directive("TimeoutStopSec", "TimeoutStopUSec", "t", lambda i: i.spec.kill_timeout * 1000,
                       _usec_text),),
            flag="--kill-timeout", short="-k"),
    # PM2 (lib/God/Methods.js, killProcess) signals the whole process tree (lib/TreeKill.js) unless treekill is
    # false, when only the main pid is signalled. systemd's default, KillMode=control-group, signals every
    # process of the unit. false is KillMode=mixed: SIGINT to the main process alone (it may stop its children
    # itself), then, once it has exited, SIGKILL to whatever is left. Not KillMode=process, whose survivors
    # would keep the stopped transient unit loaded (a unit whose cgroup holds processes is never
    # garbage-collected), so its name could not be taken by the app's next start (systemd.kill(5)).
    Setting("treekill", parse_bool, True, "Send the stop signal to every process of the app (true), or only "
            "to its main process (false; KillMode=mixed): what is left once it has exited is killed, since a "
            "stopped app's processes cannot outlive its unit.",
            (Directive("KillMode", "KillMode", "s", lambda i: None if i.spec.treekill else "mixed", str),)),
    # PM2's `-u/--user <name>` is spelled --uid here: pmsd's own `--user` is the scope switch (your user
    # manager), and one word meaning both would silently change which manager a command talks to.
    Setting("user", parse_user_group, None, "User (name or uid) to run the app as (system mode only). It gets "
            "that user's HOME, USER, LOGNAME and SHELL, and none of the environment pmsd ran in.",
            (Directive("User", "User", "s", lambda i: i.spec.user, _literal, system_only=True),),
            aliases=("uid",), flag="--uid"),
    Setting("group", parse_user_group, None, "Group (name or gid) to run the app as (system mode only).",
            (Directive("Group", "Group", "s", lambda i: i.spec.group, _literal, system_only=True),),
            aliases=("gid",), flag="--gid"),
    Setting("out_file", parse_text, None, "File the app's stdout is appended to, instead of the journal "
            "(relative to cwd; missing directories are created). god writes it from a pipe systemd holds "
            "(timestamps, JSON, reloadLogs, rotation); cluster apps and PMSD_NO_GOD have systemd append to it "
            "directly. 'NULL' or '/dev/null' discards stdout (StandardOutput=null), as PM2 means them.",
            (Directive("StandardOutput", "StandardOutputFileToAppend", "s",
                       _stdout_path,
                       lambda v: f"append:{_literal(v)}"),
             # Opened by pmsd as the app's user, for an app that runs as another user: systemd would open the
             # path itself, as root (systemd.exec(5), StandardOutput=), following whatever the user put there.
             Directive("StandardOutput", "StandardOutputFileDescriptor", "h", lambda i: i.log_fds.get("out"),
                       lambda _fd: "fd"),
             Directive("StandardOutput", "StandardOutput", "s", _stdout_kind, str)),
            aliases=("out", "output", "out_log"), flag="--output", short="-o"),
    Setting("error_file", parse_text, None, "File the app's stderr is appended to, instead of the journal, "
            "as out_file. The only way to keep stderr apart: in the journal both streams share one connection. "
            "'NULL' or '/dev/null' discards stderr.",
            (Directive("StandardError", "StandardErrorFileToAppend", "s",
                       _stderr_path,
                       lambda v: f"append:{_literal(v)}"),
             Directive("StandardError", "StandardErrorFileDescriptor", "h", lambda i: i.log_fds.get("err"),
                       lambda _fd: "fd"),
             Directive("StandardError", "StandardError", "s", _stderr_kind, str)),
            aliases=("err", "error", "err_file", "err_log"), flag="--error", short="-e"),
    Setting("log_file", parse_log_file, None, "One file for stdout and stderr together, also next to out_file "
            "and error_file (god writes all three, as PM2). true (PM2's default file) keeps both streams in the "
            "journal, where they already are together.",
            aliases=("log",), flag="--log", short="-l", optional="",
            flag_help="One file for stdout and stderr together; without a path (PM2's default file) the "
            "lines stay in the journal."),
    Setting("disable_logs", parse_bool, False, "Discard the app's output (StandardOutput=null).",
            flag="--disable-logs"),
    Setting("merge_logs", parse_bool, False, "The instances of a multi-instance app share its log files; "
            "without it each instance has its own, PM2's '-<id>' before the extension (out-3.log).",
            aliases=("combine_logs",), flag="--merge-logs"),
    Setting("log_date_format", parse_str, None, "Timestamp prefix of each line in the app's log files and in "
            "`pmsd logs` (PM2's moment.js tokens, e.g. 'YYYY-MM-DD HH:mm:ss Z').",
            flag="--log-date-format"),
    Setting("log_type", parse_log_type, None, "'json': the app's log files and `pmsd logs` hold PM2's JSON "
            "records ({message, timestamp, type, process_id, app_name}), one per line.", flag="--log-type"),
    Setting("time", parse_bool, False, "Prefix log lines with a timestamp (PM2's YYYY-MM-DDTHH:mm:ss): in the "
            "log files god writes, and in `pmsd logs`.", flag="--time"),
    Setting("log_max_size", parse_memory_bytes, None, "Rotate the app's log files (those god writes) above "
            "this size ('10M'), as pm2-logrotate's max_size; for every app: `pmsd set log_max_size 10M`.",
            flag="--log-max-size", by_god=True),
    Setting("log_retain", parse_count, None, "Rotated log files kept per file (pm2-logrotate's retain); "
            "default 30, or `pmsd set log_retain N`.", flag="--log-retain", by_god=True),
    Setting("log_compress", parse_bool, None, "gzip rotated log files (pm2-logrotate's compress); default "
            "false, or `pmsd set log_compress true`.", flag="--log-compress", by_god=True),
    Setting("log_rotate_interval", parse_positive_duration_ms, None, "Rotate the app's log files this often "
            "('24h', '30m'), at the first line after the interval.", flag="--log-rotate-interval", by_god=True),
    Setting("max_memory_restart", parse_memory_bytes, None, "Restart the app when its memory exceeds this "
            "('150M', '1G', or bytes). Measured for the whole unit (MemoryCurrent: the app and every child), "
            "not only the main process as PM2 does; god checks every second.",
            flag="--max-memory-restart", by_god=True),
    Setting("memory_max", parse_memory_bytes, None, "A hard limit ('512M'): the kernel reclaims, then "
            "OOM-kills the app above it (systemd's MemoryMax=). Not a PM2 option.",
            (Directive("MemoryMax", "MemoryMax", "t", _memory_max, str),),
            flag="--memory-max"),
    Setting("cron_restart", parse_cron, None, "Restart the app on a cron pattern (5 or 6 fields, or "
            "@hourly/@daily/...), through a systemd timer unit that fires whether god runs or not; a stopped "
            "app is started.", aliases=("cron",), flag="--cron-restart", short="-c", more_flags=("--cron",)),
    Setting("watch", parse_watch, (), "Restart the app when files change: true (its cwd) or paths relative "
            "to cwd, watched recursively by god.", flag="--watch", optional="true",
            flag_help="Restart the app when files change: in its cwd, or in the paths given (--watch src, "
            "repeatable; a path is read after the script only, so `--watch app.js` starts app.js).",
            by_god=True),
    Setting("ignore_watch", parse_patterns, (), "Globs or regular expressions of paths not to watch; they "
            "replace the default (dot-files and node_modules), as in PM2.", flag="--ignore-watch", by_god=True),
    Setting("watch_delay", parse_duration_ms, 0, "Wait this long (ms, or '2s') after the last change before "
            "restarting; changes closer than 100 ms always restart once.", flag="--watch-delay", by_god=True,
            flag_parse=parse_seconds_ms,
            flag_help="Wait this long after the last change before restarting: seconds, as PM2 reads the flag "
            "(4, 0.5), or with a unit (500ms, 2s). The ecosystem key watch_delay is in ms."),
    Setting("instances", parse_instances, 1, "Cluster mode: run this many instances (pmsd-<app>@<n>.service "
            "from one template unit); 'max' or 0 for one per CPU, -N for all CPUs but N.",
            flag="--instances", short="-i"),
    Setting("exec_mode", parse_exec_mode, "fork", "'cluster' (the default when instances is given): instances "
            "share the app's port and `reload` replaces them one at a time; 'fork': reload restarts them.",
            flag="--exec-mode"),
    Setting("port", parse_port, None, "Cluster mode: the port (or address:port) systemd listens on, in a "
            "socket unit shared by every instance (LISTEN_FDS=1, fd 3). Defaults to env.PORT; Node apps' "
            "listen(PORT) takes it unchanged. In fork mode it only sets PORT, as in PM2.",
            (Directive("ListenStream", "Listen", "a(ss)", _listen_streams, lambda v: _literal(v[0][1]),
                       unit_type="socket", repeated=True),
             Directive("Environment", "Environment", "as", _preload_env, _env_text),
             Directive("NonBlocking", "NonBlocking", "b", _non_blocking, lambda v: "yes" if v else "no")),
            flag="--port"),
    Setting("wait_ready", parse_bool, False, "The app says when it is ready (Node: process.send('ready'); any "
            "language: sd_notify READY=1, Type=notify); until then it is launching, and reload waits for it.",
            (Directive("NotifyAccess", "NotifyAccess", "s", _notify_access, str),),
            flag="--wait-ready"),
    Setting("listen_timeout", parse_positive_duration_ms, 3000, "How long (ms) a starting instance may take to "
            "be ready: with wait_ready, a Node app not ready by then is called online anyway, as in PM2, and "
            "another language's app fails its start (TimeoutStartSec=); without, how long reload waits for it "
            "to accept on the shared socket.",
            (Directive("TimeoutStartSec", "TimeoutStartUSec", "t", _start_timeout_usec, _usec_text),),
            flag="--listen-timeout"),
    Setting("instance_var", parse_env_name, "NODE_APP_INSTANCE", "Variable holding each instance's number.",
            flag="--instance-var"),
    Setting("increment_var", parse_env_name, None, "A numeric env variable that grows by one per instance "
            "(e.g. PORT for apps that cannot share a socket).", flag="--increment-var"),
    Setting("autostart", parse_bool, True, "Start the app when its definition is loaded; false only "
            "registers it.", flag="--no-autostart",
            flag_help="Only register the app (listed as stopped); start it later with `pmsd start`."),
    # PM2 (lib/God/Methods.js) stops such an app with process.send('shutdown') rather than a signal; the Node
    # preload reads PMSD_SHUTDOWN_WITH_MESSAGE (an Environment= line, _preload_env) to do the same.
    Setting("shutdown_with_message", parse_bool, False, "Node apps: ask the app to stop with the message "
            "'shutdown' (process.on('message')) rather than SIGINT; after kill_timeout it is killed anyway.",
            flag="--shutdown-with-message"),
    # PM2's _startJson (lib/API.js) appends "-<env>" to the name when started with --env <env>.
    Setting("append_env_to_name", parse_bool, False, "With `--env <env>`, the app is named <name>-<env>."),
    # PM2's verifyConfs (lib/Common.js): true forces fork mode.
    Setting("execute_command", parse_bool, False, "true: run in fork mode even with instances, as PM2 does."),
)

SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


def camel_case(key: str) -> str:
    """PM2's camelCase spelling of a key (lib/tools/Config.js): every "_"-separated part after the first is
    capitalised, except one-letter parts; max_memory_restart is maxMemoryRestart."""
    first, *rest = key.split("_")
    return first + "".join(part[:1].upper() + part[1:] if len(part) > 1 else part for part in rest)


def _aliases() -> dict[str, str]:
    """Every other spelling of a setting's key: its aliases (PM2's schema.json names them), and the camelCase of
    the key and of each alias. PM2 accepts the camelCase of its own canonical key, which is sometimes one of
    pmsd's aliases (exec_interpreter, node_args, uid)."""
    out: dict[str, str] = {}
    for setting in SETTINGS:
        for spelling in (setting.key, *setting.aliases):
            for name in (spelling, camel_case(spelling)):
                if name != setting.key:
                    out[name] = setting.key
    out["interpreterArgs"] = "interpreter_args"  # PM2's schema.json lists it beside node_args
    return out


ALIASES: dict[str, str] = _aliases()

# PM2 ecosystem keys (PM2 7.0.4, lib/API/schema.json, and a few its code reads) that have no effect under pmsd,
# with the reason the start warning gives: accepted and named, never called "unknown".
NO_EFFECT: dict[str, str] = {
    "name_prefix": "PM2 reads it only from the --name-prefix flag",
    "install_url": "a PM2 module's install URL; pmsd has no modules",
    "pid_file": "systemd tracks the main pid; `pmsd pid <app>` prints it",
    "source_map_support": "PM2's Node source-map hook; give node --enable-source-maps in interpreter_args",
    "disable_source_map_support": "PM2's Node source-map hook, which pmsd never installs",
    "vizion": "PM2's git metadata of the app's directory",
    "post_update": "commands PM2 runs after `pm2 pull`, which pmsd has not",
    "watch_options": "chokidar options; god's inotify watcher takes watch, ignore_watch and watch_delay only",
    "force": "PM2 starts a duplicate of a running script; pmsd names are unique (`pmsd start -f` makes a copy)",
    "trace": "PM2.io tracing",
    "disable_trace": "PM2.io tracing",
    "v8": "PM2.io V8 metrics",
    "event_loop_inspector": "PM2.io event-loop metrics",
    "deep_monitoring": "PM2.io monitoring",
    "pmx": "PM2.io instrumentation",
    "automation": "PM2.io instrumentation",
    "io": "PM2.io options",
    "username": "PM2 overwrites it with the user running pm2",
    "windowsHide": "Windows only",
    "kill_retry_time": "systemd sees the exit itself; kill_timeout bounds the wait",
    "write": "PM2 writes the definition to <name>-pm2.json; `pmsd describe` and `pmsd jlist` show it",
    "max_memory": "not a PM2 option; max_memory_restart and memory_max are",
    "version": "PM2 reads the version from package.json",
    "ext": "PM2's old watch filter; use ignore_watch",
}
NO_EFFECT_ALIASES: dict[str, str] = {"pid": "pid_file", "pidFile": "pid_file", **{
    camel_case(key): key for key in NO_EFFECT if camel_case(key) != key}}
