"""Cluster apps: N instances of a template unit (pmsd-<app>@<n>.service) sharing one socket unit.

PM2 needs a master process that accepts connections and hands them to Node workers. Here systemd holds the
listening socket (pmsd-<app>.socket), passes it to every instance (LISTEN_FDS, fd 3), and the kernel balances
accept() among them, for any language. This module starts instances, keeps the unit files in step with the
definition, releases the socket when no instance is left, and waits for a new instance to be ready during a
rolling reload.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence

from pmsd.context import Context
from pmsd.definition.logpipes import LOG_SOCKET_PREFIX
from pmsd.definition.settings import MAX_INSTANCES, is_node
from pmsd.definition.unitfiles import LOG_DROPIN, render_cluster_units, render_log_dropin
from pmsd.definition.unitvalues import fnmatch_literal
from pmsd.errors import PmsdError, UsageError
from pmsd.linux.readiness import wait_cgroup_accepting
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec, UnitInputs
from pmsd.model.status import exit_detail, failed_to_start
from pmsd.state.ports import forget_found_ports, parse_status_ports, read_found_ports, write_found_ports
from pmsd.state.unitfiles import (
    dropin_path,
    installed_units,
    read_dropin,
    remove_dropin,
    remove_leftovers,
    remove_units,
    write_units,
)
from pmsd.systemd.bus import Manager
from pmsd.systemd.jobs import stop_and_collect, stop_and_reset, stop_and_wait
from pmsd.systemd.names import (
    UNIT_PREFIX,
    escape_name,
    instance_slice,
    instance_unit,
    listener_unit,
    socket_unit,
)
from pmsd.systemd.paths import journalctl_command
from pmsd.systemd.states import RUNNING_STATES, UP_STATES, ActiveState, ServiceState, UnitListing

START_TIMEOUT_S = 30.0
# After the first port a probed instance reports, how long to wait for more (an app that listens on several
# ports usually does so in the same tick of its start-up).
MORE_PORTS_S = 0.3
PROBE_POLL_S = 0.02


def discovers_ports(spec: AppSpec) -> bool:
    """A Node cluster app with no declared `port`: the preload reports the ports its code listens on, and
    pmsd hands systemd's socket for them to every instance (pmsd.state.ports)."""
    return spec.exec_mode == "cluster" and not spec.port and is_node(spec.interpreter)


def unit_inputs(ctx: Context, spec: AppSpec) -> UnitInputs:
    """What the app's template and socket are rendered from: its definition and the ports found for it."""
    found = None if spec.port else read_found_ports(ctx.state_dir, spec.name)
    return UnitInputs(spec, ctx.registry.instance_env_file(spec.name, "%i"), system=not ctx.user,
                      found_ports=found or (), discover_ports=discovers_ports(spec))


def listen_addresses(ctx: Context, spec: AppSpec) -> tuple[str, ...]:
    """The addresses the app's socket unit listens on: the declared port, else the ports found."""
    return unit_inputs(ctx, spec).listen


def install_units(ctx: Context, spec: AppSpec, log_dropins: Mapping[str, str] | None = None) -> None:
    """Write the app's unit files, and the instances' log drop-ins (instance_log_dropins); reload the manager
    only if a loaded unit now differs from its files."""
    manager = ctx.manager
    inputs = unit_inputs(ctx, spec)
    changed = write_units(ctx.user, ctx.environ, {**render_cluster_units(inputs, manager.version),
                                                  **(log_dropins or {})})
    if not changed:
        return
    loaded = [*(unit.name for unit in instance_units(manager, spec.name)), socket_unit(spec.name),
              listener_unit(spec.name)]
    if any(manager.needs_reload(unit) for unit in loaded):
        manager.reload()


def instance_log_dropins(ctx: Context, records: Sequence[AppRecord], pipes: Mapping[int, Mapping[str, str]]
                         ) -> dict[str, str]:
    """Where each instance's stdout and stderr go, in a drop-in of its own (the template names no file): PM2
    gives each instance its own files (AppRecord.log_spec), or god's pipes for them (`pipes`, by pm_id)."""
    version = ctx.manager.version
    dropins: dict[str, str] = {}
    for record in records:
        inputs = UnitInputs(record.log_spec, ctx.registry.record_env_file(record), system=not ctx.user,
                            log_pipes=pipes.get(record.pm_id, {}))
        dropins[dropin_path(record.unit, LOG_DROPIN)] = render_log_dropin(inputs, version)
    return dropins


def instance_units(manager: Manager, name: str) -> list[UnitListing]:
    """The app's loaded instance units, with their states (one ListUnitsByPatterns call)."""
    return manager.list_units([f"{UNIT_PREFIX}{fnmatch_literal(escape_name(name))}@*.service"])


def launch(ctx: Context, records: Sequence[AppRecord], pipes: Mapping[int, Mapping[str, str]]) -> None:
    """Start instances together (their start jobs run in parallel) and wait until each is started: exec'd,
    or READY=1 for wait_ready apps (bounded by listen_timeout, systemd's TimeoutStartSec=). `pipes`: god's log
    pipes of the instances whose files god writes, by pm_id (pmsd.api.logpipes)."""
    manager = ctx.manager
    spec = records[0].spec
    log_dropins = instance_log_dropins(ctx, records, pipes)
    if discovers_ports(spec) and read_found_ports(ctx.state_dir, spec.name) is None:
        probe_ports(ctx, records[0], log_dropins)
    else:
        _learn_reported_ports(ctx, spec)
    install_units(ctx, spec, log_dropins)
    for record in records:
        manager.start_unit(record.unit)
    for record in records:
        _check_started(ctx, record)


def _check_started(ctx: Context, record: AppRecord) -> ServiceState:
    """Wait for the instance's start job; PmsdError with systemd's reason when it did not start."""
    manager = ctx.manager
    state = _wait_started(manager, record.unit, record.spec, "the start job")
    if state is not None and state.active_state == ActiveState.INACTIVE and state.result == "success":
        # The job ended without starting the unit or failing it: seen once while another client ran
        # daemon-reload. Starting again is harmless (a running unit ignores it) and tells us for sure.
        manager.start_unit(record.unit)
        state = _wait_started(manager, record.unit, record.spec, "the start job")
    # Like a fork app (pmsd.api.launch), an instance that ran and already failed (autorestart off, a crash in its
    # first millisecond) started: PM2 lists it, then errored. Inactive stays a failure: a start job that failed
    # on a dependency (the app's socket) leaves the instance inactive.
    ran_and_failed = state is not None and state.active_state == ActiveState.FAILED and not failed_to_start(
        state, record.spec.wait_ready)
    if state is None or (state.active_state not in UP_STATES and not ran_and_failed):
        raise PmsdError(f"app {record.name!r} instance {record.instance} (id {record.pm_id}) failed to start: "
                        f"{_failure(ctx, record, state)}",
                        f"see `{journalctl_command(ctx.user, record.unit)}` (or `pmsd logs {record.pm_id}`)")
    return state


def probe_ports(ctx: Context, record: AppRecord, log_dropins: Mapping[str, str]) -> tuple[int, ...]:
    """The first run of a Node cluster app whose port is written in its code: find the ports it listens on.

    One instance runs alone, with no socket: the preload turns each listen(port) into a listen on an ephemeral
    port, which nobody connects to, and reports the port in the unit's StatusText (`pmsd-ports: 8000`). The
    ports are recorded; if there are any, the instance stops, so that every instance, this one too, starts on
    systemd's socket for them. Nothing ever listened on the app's port before that socket did, so no connection
    is refused while this settles. An app that reports no port within listen_timeout is a worker: it keeps
    running, and the recorded empty set means it is not probed again."""
    manager = ctx.manager
    install_units(ctx, record.spec, log_dropins)
    manager.start_unit(record.unit)
    _check_started(ctx, record)
    ports = _reported_ports(manager, record.unit, time.monotonic() + record.spec.listen_timeout / 1000)
    write_found_ports(ctx.state_dir, record.name, ports)
    if ports:
        stop_and_collect(manager, record.unit, record.spec.kill_timeout / 1000 + 5)
    return ports


def _reported_ports(manager: Manager, unit: str, deadline: float) -> tuple[int, ...]:
    """The ports the instance reports (StatusText) by the deadline, or MORE_PORTS_S after the first report;
    () if it reports none, or stops running."""
    ports: tuple[int, ...] = ()
    while time.monotonic() < deadline:
        ports = parse_status_ports(str(manager.service_property(unit, "StatusText", "s")))
        if ports:
            deadline = min(deadline, time.monotonic() + MORE_PORTS_S)
        else:
            state = manager.service_state(unit)
            if state is None or state.active_state not in UP_STATES:
                return ()
        time.sleep(PROBE_POLL_S)
    return ports


def _learn_reported_ports(ctx: Context, spec: AppSpec) -> None:
    """Ports the running instances reported since the app's ports were recorded (its code changed, or it
    listens on a port later): add them to the record. systemd's socket can only take them when it is started
    again, that is once no instance runs (`pmsd stop` then `start`, or `pmsd restart`)."""
    if not discovers_ports(spec):
        return
    found = read_found_ports(ctx.state_dir, spec.name) or ()
    reported = {port for unit in instance_units(ctx.manager, spec.name) if unit.active_state in UP_STATES
                for port in parse_status_ports(str(ctx.manager.service_property(unit.name, "StatusText", "s")))}
    if not reported <= set(found):
        write_found_ports(ctx.state_dir, spec.name, tuple(reported | set(found)))


def _wait_started(manager: Manager, unit: str, spec: AppSpec, what: str) -> ServiceState | None:
    """Wait for the unit's start job to end: exec'd, or READY=1 within listen_timeout for wait_ready apps."""
    timeout = max(START_TIMEOUT_S, spec.listen_timeout / 1000 + 5)
    return manager.wait_until(unit, lambda s: s is None or not s.has_job, timeout, what)


def _failure(ctx: Context, record: AppRecord, state: ServiceState | None) -> str:
    manager = ctx.manager
    addresses = listen_addresses(ctx, record.spec)
    if addresses:
        socket = manager.unit_summary(socket_unit(record.name))
        if socket is None or socket[0] != ActiveState.ACTIVE:
            return (f"systemd could not listen on {', '.join(addresses)} ({socket_unit(record.name)} is "
                    f"{socket[0] if socket else 'not loaded'}): is the port in use?")
    if state is None:
        return "the unit vanished"
    if state.exec_main_code:
        return exit_detail(state)
    if state.result == "timeout":
        return f"not ready within listen_timeout ({record.spec.listen_timeout} ms)"
    return f"systemd reports {state.active_state} ({state.result})"


def release_if_idle(ctx: Context, name: str) -> None:
    """Stop the app's socket (closing its port, as PM2's stop does) once none of its instances runs."""
    manager = ctx.manager
    if any(unit.active_state in RUNNING_STATES for unit in instance_units(manager, name)):
        return
    for unit in (socket_unit(name), listener_unit(name)):
        stop_and_reset(manager, unit)


def remove_app_units(ctx: Context, name: str) -> None:
    """The app is gone: stop its socket and delete its unit files."""
    forget_found_ports(ctx.state_dir, name)
    remove_leftovers(ctx.user, ctx.environ, name, LOG_DROPIN)
    units = installed_units(ctx.user, ctx.environ, name)
    if units:
        release_if_idle(ctx, name)
        remove_units(ctx.user, ctx.environ, units)
    # The slices of the instances and of their log units outlive them (slices are not collected while
    # active; one per deleted app was left): stop them with the app.
    manager = ctx.manager
    for slice_unit in (instance_slice(name, ctx.user), instance_slice(name, ctx.user, LOG_SOCKET_PREFIX)):
        summary = manager.unit_summary(slice_unit)
        if summary is not None and summary[0] == ActiveState.ACTIVE:
            manager.stop(slice_unit)


def wait_ready(ctx: Context, record: AppRecord, unit: str | None = None) -> bool:
    """After a restart during reload: is the new instance ready to take connections?

    wait_ready apps are Type=notify, so their start job already waited for READY=1. Others with a port are
    ready once one of their processes polls (epoll) or blocks in accept() on the shared socket, which pmsd
    reads in /proc (pmsd.linux.readiness); connecting would prove nothing, another instance may answer. PM2 moves
    on after listen_timeout when no 'listening' comes; so does pmsd (False is returned).
    """
    spec = record.spec
    if spec.wait_ready or not listen_addresses(ctx, spec):
        return True
    state = ctx.manager.service_state(unit or record.unit)
    if state is None or not state.control_group:
        return False
    return wait_cgroup_accepting(state.control_group, time.monotonic() + spec.listen_timeout / 1000)


@contextlib.contextmanager
def stand_in(ctx: Context, record: AppRecord) -> Iterator[None]:
    """A temporary extra instance, numbered after `record` (the app's highest), serving on the shared socket
    while the app's instances are replaced: PM2 starts each new worker before it stops the old one, so capacity
    never drops, and a single-instance app is never left without a process. It runs `record`'s environment,
    is not in the registry, and is stopped once the block is done."""
    manager = ctx.manager
    number = (record.instance or 0) + 1
    unit = instance_unit(record.name, number)
    env_file = ctx.registry.instance_env_file(record.name, number)
    shutil.copyfile(ctx.registry.record_env_file(record), env_file)
    os.chmod(env_file, 0o600)
    # Its output goes where `record`'s does (the same files, or god's pipes for them, which take any number
    # of writers): a stand-in is not in the registry, and god follows only registered instances.
    logs = read_dropin(ctx.user, ctx.environ, record.unit, LOG_DROPIN)
    try:
        if logs is not None and write_units(ctx.user, ctx.environ, {dropin_path(unit, LOG_DROPIN): logs}) and \
                manager.needs_reload(unit):
            manager.reload()
        manager.start_unit(unit)
        state = _wait_started(manager, unit, record.spec, "the stand-in's start")
        if state is not None and state.active_state in (ActiveState.ACTIVE, ActiveState.ACTIVATING):
            wait_ready(ctx, record, unit)
        yield
    finally:
        with contextlib.suppress(PmsdError):
            stop_and_wait(manager, unit, record.spec.kill_timeout / 1000 + 5, "the stand-in to stop")
            manager.reset_failed(unit)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(env_file)
        remove_dropin(ctx.user, ctx.environ, unit, LOG_DROPIN)


def parse_scale(current: int, request: str) -> int:
    """`pmsd scale app 4`, `+2` or `-1` -> the instance count wanted."""
    text = request.strip()
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:  # "²", "+-1", 5000 digits: not for int()
        raise UsageError(f"scale: expected a number, +N or -N, got {request[:40]!r}")
    wanted = current + int(text) if text[0] in "+-" else int(text)
    if wanted < 1:
        raise UsageError(f"scale: {request} would leave {wanted} instances", "`pmsd stop` the app to stop it all")
    if wanted > MAX_INSTANCES:
        raise UsageError(f"scale: at most {MAX_INSTANCES} instances, asked for {wanted}")
    return wanted
