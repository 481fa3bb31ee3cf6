"""`pmsd doctor`: what makes pmsd misbehave on this host, each finding with the exact fix (issue 18).

Checks are data: each small function below reads what it needs and returns one Finding (check, level, what was
found, why it matters, the fix: a command or a file to write). Paths, the environment and the manager are
parameters, the real ones by default, so tests point them at temporary files and fakes. `diagnose` runs every
check on its own: one that cannot read what it needs is reported as such, and the others still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from pmsd import __version__
from pmsd.api.cluster import listen_addresses
from pmsd.api.doctor_host import (
    ManagerLike,
    check_cgroup,
    check_clock,
    check_journald_rate_limit,
    check_journald_storage,
    check_linger,
    manager_cgroup,
    scope_name,
    user_name,
)
from pmsd.api.godlink import GodConnection
from pmsd.api.report import failure_text
from pmsd.context import Context
from pmsd.definition.parsers import port_number
from pmsd.definition.settings import SETTINGS, SYSTEMD_FLOOR
from pmsd.errors import PmsdError
from pmsd.linux.listeners import TCP_TABLES, Listener, process_cgroup, process_name, read_listeners, socket_holders
from pmsd.model.doctor import Finding, Level
from pmsd.model.protocol import PingResult
from pmsd.model.status import exit_detail
from pmsd.state.paths import socket_path
from pmsd.systemd.bus import MEMORY_PEAK_SINCE, control_group
from pmsd.systemd.names import GOD_UNIT, UNIT_PREFIX
from pmsd.systemd.paths import journalctl_command, private_socket, runtime_dir, scope_flag
from pmsd.systemd.states import ActiveState, ServiceState

BOOTED_DIR = "/run/systemd/system"  # exists only when systemd is PID 1 (sd_booted(3))
CHECKS = ("manager", "systemd", "linger", "cgroup", "journald-rate-limit", "journald-storage", "god", "ports",
          "clock")


class Unreachable:
    """The manager that could not be reached: every question raises an error that points at the `manager`
    finding, which says why (rather than every check repeating it)."""

    def __init__(self, user: bool) -> None:
        self.error = PmsdError(f"the systemd {scope_name(user)} cannot be reached (see `manager`)")

    @property
    def version(self) -> int:
        raise self.error

    def service_state(self, unit: str) -> ServiceState | None:
        raise self.error


def run_check(name: str, check: Callable[[], Finding], environ: Mapping[str, str] = os.environ) -> Finding:
    """The check's finding; a check that cannot read what it needs says so, and never stops the others."""
    try:
        return check()
    except (PmsdError, OSError) as error:
        return Finding(name, Level.WARN, f"could not be checked: {failure_text(error)}")
    except Exception as error:  # a diagnosis must outlive the oddities of the host it diagnoses
        if environ.get("PMSD_DEBUG"):
            raise
        return Finding(name, Level.WARN, f"could not be checked: {type(error).__name__}: {error}",
                       "this is a bug in pmsd's doctor",
                       "run `PMSD_DEBUG=1 pmsd doctor` and report the traceback with `pmsd report`'s output")


# ---------------------------------------------------------------------------------------- manager, systemd


def check_manager(manager: ManagerLike, user: bool, error: PmsdError | None = None,
                  environ: Mapping[str, str] = os.environ, uid: int | None = None,
                  booted_dir: str = BOOTED_DIR) -> Finding:
    """Can pmsd reach the manager, and how; when it cannot, the fix for the reason found."""
    uid = os.getuid() if uid is None else uid
    private = private_socket(user, environ)
    if error is None:
        # The way Manager.connect() goes: the manager's own socket when it may be used, else the bus.
        route = private if os.access(private, os.R_OK | os.W_OK) else ("the user bus" if user else "the system bus")
        return Finding("manager", Level.OK, f"the systemd {scope_name(user)} answers through {route} "
                       f"(systemd {manager.version})")
    return Finding("manager", Level.FAIL, error.message,
                   "pmsd runs every app as a unit of this manager: no command that starts, stops or lists apps "
                   "works without it", _manager_fix(user, error, environ, uid, private, booted_dir))


def _manager_fix(user: bool, error: PmsdError, environ: Mapping[str, str], uid: int, private: str,
                 booted_dir: str) -> str:
    name = user_name(uid) or "$USER"
    if not os.path.isdir(booted_dir):
        return ("PID 1 is not systemd here (`ps -p 1 -o comm=` tells which init runs; most containers): run pmsd "
                "on a host booted with systemd, or in the container start `systemd --user` beside PID 1 as "
                "README's 'Requirements' describes" if user else
                "pmsd --system needs systemd as PID 1: drop --system to use your user manager")
    if not user:
        return error.hint or "run pmsd --system as root"
    directory = runtime_dir(environ)
    if "XDG_RUNTIME_DIR" not in environ and os.path.isdir(f"/run/user/{uid}"):
        return f"export XDG_RUNTIME_DIR=/run/user/{uid} (shells from su, sudo or cron do not set it)"
    if not os.path.isdir(directory):
        return (f"no {directory}: no session of yours started your user manager. `loginctl enable-linger {name}` "
                "starts it now and at every boot; or log in through SSH or a console (su and sudo -u start "
                "no session)")
    if not os.path.exists(private):
        return (f"your user manager is not running ({private} is missing): `loginctl enable-linger {name}`, "
                f"or as root `systemctl start user@{uid}.service`")
    return error.hint or f"check `systemctl --user status` as {name}"


def version_features() -> list[tuple[str, int]]:
    """pmsd's features that need a manager newer than SYSTEMD_FLOOR: (what, since which version)."""
    features = [("MemoryPeak for `pmsd describe`'s memory peak", MEMORY_PEAK_SINCE)]
    for setting in SETTINGS:
        features += [(f"{directive.name}= for {setting.key}", directive.min_version)
                     for directive in setting.directives if directive.min_version > SYSTEMD_FLOOR]
    return features


def check_systemd(manager: ManagerLike, user: bool,
                  features: Sequence[tuple[str, int]] | None = None) -> Finding:
    """The running manager's version against pmsd's floor, and the version-gated features it has."""
    version = manager.version
    features = version_features() if features is None else features
    if version < SYSTEMD_FLOOR:
        return Finding("systemd", Level.FAIL, f"systemd {version} ({scope_name(user)}): pmsd needs {SYSTEMD_FLOOR} "
                       "or later",
                       f"pmsd writes units with settings and D-Bus properties of systemd {SYSTEMD_FLOOR} (Debian 12, "
                       "RHEL 9); an older manager rejects some of them or reads them differently",
                       "upgrade the distribution's systemd: Debian 12 has 252, Debian 13 257, Ubuntu 24.04 255")
    have = [f"{what} (systemd {since})" for what, since in features if version >= since]
    missing = [f"{what} (systemd {since})" for what, since in features if version < since]
    found = f"systemd {version} ({scope_name(user)}, pmsd needs {SYSTEMD_FLOOR})"
    if have:
        found += "; has: " + ", ".join(have)
    if not missing:
        return Finding("systemd", Level.OK, found)
    return Finding("systemd", Level.OK, f"{found}; lacks: {', '.join(missing)}",
                   "pmsd leaves these out on this manager (gated on its Version, never the OS name); everything "
                   "else works", f"for them, a systemd of {max(since for _, since in features)} or later")


# ---------------------------------------------------------------------------------------- god


def god_features() -> list[str]:
    """The options only god carries out (the settings table's by_god rows)."""
    return [setting.key for setting in SETTINGS if setting.by_god]


def check_god(manager: ManagerLike, user: bool, disabled: bool, ping: Callable[[], PingResult],
              state_dir: str = "") -> Finding:
    """god's unit: running and answering, not needed (PMSD_NO_GOD), or failed with systemd's reason."""
    journal = f"{journalctl_command(user, GOD_UNIT)} -n 50"
    if disabled:
        return Finding("god", Level.WARN, "disabled by PMSD_NO_GOD in this environment",
                       "apps run and restart without god, but what only god does is off: "
                       f"{', '.join(god_features())}, `pmsd events`; `pmsd ls` asks systemd app by app",
                       "unset PMSD_NO_GOD (or set it to 0), then `pmsd ping`")
    state = manager.service_state(GOD_UNIT)
    if state is None or state.active_state == ActiveState.INACTIVE:
        return Finding("god", Level.OK, f"{GOD_UNIT} is not running: `pmsd ping` or the next `pmsd start` "
                       "starts it")
    if state.active_state == ActiveState.FAILED:
        return Finding("god", Level.FAIL, f"{GOD_UNIT} failed: {exit_detail(state)}",
                       f"until it runs, {', '.join(god_features())} and `pmsd events` do nothing",
                       f"read why: `{journal}`; once fixed, `pmsd ping` starts it again (`pmsd update` after "
                       "upgrading pmsd)")
    if state.waiting_restart or (state.active_state == ActiveState.ACTIVATING and state.n_restarts):
        return Finding("god", Level.WARN, f"{GOD_UNIT} is restarting after {state.n_restarts} crash(es), the last "
                       f"{exit_detail(state)}", "god's features stop while it is down, and systemd gives up "
                       "after repeated crashes", f"read why: `{journal}`")
    try:
        reply = ping()
    except (PmsdError, OSError) as error:
        return Finding("god", Level.WARN, f"{GOD_UNIT} is {state.active_state} (pid {state.main_pid}) but does not "
                       f"answer: {failure_text(error)}", "commands fall back to asking systemd, slower",
                       f"`pmsd update` restarts it; if it stays silent, read `{journal}`")
    found = f"running, pid {reply['pid']}, pmsd {reply['version']}, {reply['apps']} app(s) of {reply['state_dir']}"
    if reply["version"] != __version__:
        return Finding("god", Level.WARN, f"{found}; this CLI is pmsd {__version__}",
                       "god runs code older or newer than the CLI: commands are not run by god, and its "
                       "features follow its own version", "pmsd update")
    if state_dir and os.path.realpath(reply["state_dir"]) != os.path.realpath(state_dir):
        return Finding("god", Level.WARN, f"{found}; this CLI's registry is {state_dir}",
                       "god serves another registry: its features (watch, memory restarts, log files) are not "
                       "applied to the apps this CLI lists",
                       "use one PMSD_STATE_DIR (or XDG_STATE_HOME) for the CLI and god: god takes it from the "
                       f"manager's environment (`systemctl {scope_flag(user)} show-environment`); then `pmsd update`")
    return Finding("god", Level.OK, found)


# ---------------------------------------------------------------------------------------- ports


def _overlaps(host: str, listener: Listener) -> bool:
    """Would a socket bound to `host` clash with this listener on the same port? "" (a bare port) and "::" bind
    every address, IPv4 included (BindIPv6Only=default); "0.0.0.0" every IPv4 one."""
    address = listener.address
    if not host or host == "::" or address == "::":
        return True
    if "0.0.0.0" in (host, address):
        return ":" not in host and ":" not in address
    return host == address


def is_pmsd_holder(cgroup: str, manager_group: str) -> bool:
    """A process of pmsd's (an app's instance: a pmsd-* unit) or the manager itself, which holds the listening
    socket of every cluster app's socket unit: in its init.scope, or in its cgroup's root where it could not make
    one (a manager started by hand, beside another init)."""
    unit = cgroup.rstrip("/").rpartition("/")[2]
    manager = manager_group.rstrip("/")
    return unit.startswith(UNIT_PREFIX) or cgroup == f"{manager}/init.scope" or bool(manager and cgroup == manager)


def _holder_text(listener: Listener, pids: Sequence[int], uid: int, proc: str) -> str:
    if pids:
        return ", ".join(f"pid {pid} ({process_name(pid, proc)})" for pid in pids)
    if listener.uid != uid:
        return f"a process of {user_name(listener.uid) or f'uid {listener.uid}'} (as root, `ss -ltnp` names it)"
    return "a process not visible here"


def check_ports(apps: Mapping[str, Sequence[str]], control_group: Callable[[], str], user: bool = True,
                uid: int | None = None, tables: Sequence[str] = TCP_TABLES, proc: str = "/proc") -> Finding:
    """Each cluster app's address (its `port`, or the ports found for it): does a process that is not pmsd's
    listen there too? Its socket unit could not bind, so starting, reloading or scaling the app fails."""
    uid = os.getuid() if uid is None else uid
    wanted = [(app, address) for app, addresses in sorted(apps.items()) for address in addresses]
    if not wanted:
        return Finding("ports", Level.OK, "no cluster app has a port to check")
    listeners = read_listeners(tables)
    clashing = [(app, address, listener) for app, address in wanted for listener in listeners
                if listener.port == port_number(address)
                and _overlaps(address.rpartition(":")[0].strip("[]"), listener)]
    holders = socket_holders({listener.inode for _, _, listener in clashing}, proc)
    manager_group = manager_cgroup(control_group, user, uid) if clashing else ""
    foreign = []
    for app, address, listener in clashing:
        pids = holders.get(listener.inode, [])
        if any(is_pmsd_holder(process_cgroup(pid, proc), manager_group) for pid in pids):
            continue
        foreign.append(f"{app} ({address}): {listener.address}:{listener.port} is held by "
                       f"{_holder_text(listener, pids, uid, proc)}")
    checked = ", ".join(f"{app} {address}" for app, address in wanted)
    if not foreign:
        return Finding("ports", Level.OK, f"no other process listens on the cluster apps' ports ({checked})")
    ports = sorted({port_number(address) for _, address, _ in clashing})
    return Finding("ports", Level.FAIL, "; ".join(foreign),
                   "the app's socket unit cannot bind while another socket holds the port: starting, reloading or "
                   "scaling the app fails with 'Address already in use'",
                   f"see who: `ss -ltnp '{' or '.join(f'sport = :{port}' for port in ports)}'` (as root for every "
                   "process); stop that process, or give the app another `port` in its ecosystem file and "
                   "`pmsd startOrReload` it")


# ---------------------------------------------------------------------------------------- all of them


def cluster_addresses(ctx: Context) -> dict[str, tuple[str, ...]]:
    """Each cluster app's addresses: its `port`, or the ports found for it (pmsd.state.ports)."""
    specs = {record.spec.name: record.spec for record in ctx.registry.read().apps
             if record.spec.exec_mode == "cluster"}
    return {name: listen_addresses(ctx, spec) for name, spec in specs.items()}


def _ping(ctx: Context) -> PingResult:
    connection = GodConnection(socket_path(ctx.user, ctx.environ), timeout=2.0)
    try:
        result: PingResult = connection.request("ping")
        return result
    finally:
        connection.close()


def diagnose(ctx: Context) -> list[Finding]:
    """Every check, in the order they print; each on its own."""
    error: PmsdError | None = None
    try:
        manager: ManagerLike = ctx.manager
    except PmsdError as connect_error:
        error, manager = connect_error, Unreachable(ctx.user)

    def group() -> str:
        if isinstance(manager, Unreachable):
            raise manager.error
        return control_group(ctx.manager)

    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("manager", lambda: check_manager(manager, ctx.user, error, ctx.environ)),
        ("systemd", lambda: check_systemd(manager, ctx.user)),
        ("linger", lambda: check_linger(ctx.user)),
        ("cgroup", lambda: check_cgroup(group, ctx.user)),
        ("journald-rate-limit", lambda: check_journald_rate_limit(ctx.user)),
        ("journald-storage", check_journald_storage),
        ("god", lambda: check_god(manager, ctx.user, ctx.god_disabled, lambda: _ping(ctx), ctx.state_dir)),
        ("ports", lambda: check_ports(cluster_addresses(ctx), group, ctx.user)),
        ("clock", check_clock),
    ]
    return [run_check(name, check, ctx.environ) for name, check in checks]
