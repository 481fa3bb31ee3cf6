"""`pmsd doctor` (issue 18): each check against temporary files and fakes, one failing check not hiding the
others, and what the person at the terminal reads (text, colours, JSON, exit status)."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

import pmsd.api.doctor
from pmsd import __version__
from pmsd.api.doctor import (
    CHECKS,
    check_god,
    check_manager,
    check_ports,
    check_systemd,
    diagnose,
    is_pmsd_holder,
    run_check,
)
from pmsd.api.doctor_host import (
    DELEGATE_DROPIN,
    JOURNALD_DROPIN,
    check_cgroup,
    check_clock,
    check_journald_rate_limit,
    check_journald_storage,
    check_linger,
)
from pmsd.context import Context
from pmsd.errors import PmsdError
from pmsd.linux.listeners import parse_listeners
from pmsd.model.doctor import Finding, Level, worst
from pmsd.model.protocol import PingResult
from pmsd.render.doctor import render_json, render_text
from pmsd.systemd.conf import size_bytes, timespan_usec
from pmsd.systemd.states import ServiceState
from tests.unit.cli_harness import Env, run
from tests.unit.helpers import make_record, make_state

NOBODY = pwd.getpwnam("nobody")
USER_GROUP = f"/user.slice/user-{NOBODY.pw_uid}.slice/user@{NOBODY.pw_uid}.service"


class FakeManager:
    """A manager of a given version, with god's unit state."""

    def __init__(self, version: int = 257, god: ServiceState | None = None) -> None:
        self.version = version
        self.god = god

    def service_state(self, unit: str) -> ServiceState | None:
        return self.god


def user_group() -> str:
    return USER_GROUP


def no_group() -> str:
    raise PmsdError("systemd user manager: no such property")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ linger


@pytest.fixture
def logind(tmp_path: Path) -> Path:
    """systemd-logind's state directory, tracking nobody (a session, or lingering)."""
    directory = tmp_path / "run-systemd-users"
    write(directory / str(NOBODY.pw_uid), "STATE=active\n")
    return directory


def test_without_linger_warns_and_says_how(tmp_path: Path, logind: Path) -> None:
    linger = tmp_path / "linger"
    linger.mkdir()
    finding = check_linger(True, NOBODY.pw_uid, str(linger), str(logind))
    assert finding.level == Level.WARN
    assert finding.found == f"user nobody does not linger ({linger}/nobody is missing)"
    assert "systemd-logind stops" in finding.why and "every app pmsd started" in finding.why
    assert finding.fix == "loginctl enable-linger nobody"


def test_with_linger_is_ok(tmp_path: Path, logind: Path) -> None:
    linger = tmp_path / "linger"
    write(linger / "nobody", "")
    finding = check_linger(True, NOBODY.pw_uid, str(linger), str(logind))
    assert finding.level == Level.OK
    assert finding.found.startswith("user nobody lingers")
    assert not finding.fix


def test_linger_is_not_applicable_to_the_system_manager_nor_without_logind(tmp_path: Path) -> None:
    assert check_linger(False).level == Level.OK
    assert "not applicable" in check_linger(False).found
    (tmp_path / "users").mkdir()
    untracked = check_linger(True, NOBODY.pw_uid, str(tmp_path / "linger"), str(tmp_path / "users"))
    assert untracked.level == Level.OK
    assert "systemd-logind does not track you" in untracked.found


# ------------------------------------------------------------------------------------------ journald


def test_low_journald_rate_limit_warns_with_the_drop_in(tmp_path: Path) -> None:
    conf = write(tmp_path / "journald.conf", "[Journal]\n#RateLimitBurst=1\n")
    dropins = tmp_path / "journald.conf.d"
    write(dropins / "50-low.conf", "[Journal]\nRateLimitIntervalSec=1min\nRateLimitBurst=2000\n")
    finding = check_journald_rate_limit(True, NOBODY.pw_uid, str(conf), [str(dropins)], [str(tmp_path / "units")])
    assert finding.level == Level.WARN
    assert finding.found == (f"all your apps together may log RateLimitBurst=2000 per RateLimitIntervalSec=1min "
                             f"({dropins}/50-low.conf), below pmsd's 250000 lines per 30 s")
    assert f"user@{NOBODY.pw_uid}.service's budget" in finding.why
    assert finding.fix == (f"as root, write {JOURNALD_DROPIN} with the lines below, then `systemctl restart "
                           "systemd-journald`:\n[Journal]\nRateLimitIntervalSec=30s\nRateLimitBurst=250000")


def test_journald_defaults_are_low_too(tmp_path: Path) -> None:
    finding = check_journald_rate_limit(True, NOBODY.pw_uid, str(tmp_path / "none.conf"), [], [])
    assert finding.level == Level.WARN
    assert "RateLimitBurst=10000 per RateLimitIntervalSec=30s (default)" in finding.found


@pytest.mark.parametrize("journal", [
    pytest.param("RateLimitBurst=250000\nRateLimitIntervalSec=30s\n", id="pmsd's own values"),
    pytest.param("RateLimitIntervalSec=0\n", id="no limit"),
    pytest.param("RateLimitBurst=0\n", id="no limit either"),
])
def test_high_or_no_journald_limit_is_ok(tmp_path: Path, journal: str) -> None:
    conf = write(tmp_path / "journald.conf", f"[Journal]\n{journal}")
    finding = check_journald_rate_limit(True, NOBODY.pw_uid, str(conf), [], [])
    assert finding.level == Level.OK, finding


def test_user_service_drop_in_overrides_journald(tmp_path: Path) -> None:
    units = tmp_path / "units"
    dropin = write(units / f"user@{NOBODY.pw_uid}.service.d" / "log.conf",
                   "[Service]\nLogRateLimitIntervalSec=30s\nLogRateLimitBurst=500000\n")
    finding = check_journald_rate_limit(True, NOBODY.pw_uid, str(tmp_path / "none.conf"), [], [str(units)])
    assert finding.level == Level.OK
    assert finding.found == f"your apps may log LogRateLimitBurst=500000 per 30s ({dropin})"


def test_system_units_carry_their_own_limit(tmp_path: Path) -> None:
    finding = check_journald_rate_limit(False, 0, str(tmp_path / "none.conf"), [], [])
    assert finding.level == Level.OK
    assert finding.found.startswith("pmsd's system units set their own limit (250000 lines per 30 s)")


def test_an_unreadable_journald_value_is_reported_not_raised(tmp_path: Path) -> None:
    conf = write(tmp_path / "journald.conf", "[Journal]\nRateLimitBurst=lots\n")
    finding = run_check("journald-rate-limit",
                        lambda: check_journald_rate_limit(True, NOBODY.pw_uid, str(conf), [], []))
    assert finding.level == Level.WARN
    assert finding.found.startswith("could not be checked: RateLimitBurst=lots per RateLimitIntervalSec=30s")


def test_journald_storage(tmp_path: Path) -> None:
    persistent = tmp_path / "var-log-journal"
    conf = write(tmp_path / "journald.conf", "[Journal]\nStorage=none\n")
    none = check_journald_storage(str(conf), [], str(persistent))
    assert none.level == Level.FAIL
    assert none.fix == ("as root, write /etc/systemd/journald.conf.d/pmsd-storage.conf with the lines below, then "
                        "`systemctl restart systemd-journald`:\n[Journal]\nStorage=persistent")
    conf.write_text("[Journal]\nStorage=volatile\n")
    assert check_journald_storage(str(conf), [], str(persistent)).level == Level.WARN
    conf.write_text("")
    auto = check_journald_storage(str(conf), [], str(persistent))
    assert auto.level == Level.WARN
    assert auto.found.startswith(f"Storage=auto and no {persistent}")
    assert "lost at every reboot" in auto.why
    write(persistent / "0123abcd" / "system.journal", "x" * 10000)
    conf.write_text("[Journal]\nSystemMaxUse=1G\n")
    kept = check_journald_storage(str(conf), [], str(persistent))
    assert kept.level == Level.OK
    assert kept.found.startswith(f"persistent in {persistent} (Storage=auto), using ")
    assert "of SystemMaxUse=1.0G (1G)" in kept.found


def test_systemd_values() -> None:
    assert timespan_usec("30s") == 30_000_000
    assert timespan_usec("1min 30s") == 90_000_000
    assert timespan_usec("500ms") == 500_000
    assert timespan_usec("5") == 5_000_000
    assert timespan_usec("0") == 0
    assert timespan_usec("soon") is None
    assert size_bytes("4G") == 4 << 30
    assert size_bytes("1024") == 1024
    assert size_bytes("10%") is None


# ------------------------------------------------------------------------------------------ cgroup


def cgroup_tree(root: Path, host: str, manager: str) -> Path:
    write(root / "cgroup.controllers", host + "\n")
    write(root / USER_GROUP.lstrip("/") / "cgroup.controllers", manager + "\n")
    return root


def test_cgroup_without_memory_for_the_user_manager(tmp_path: Path) -> None:
    root = cgroup_tree(tmp_path / "cgroup", "cpuset cpu io memory hugetlb pids", "cpu pids")
    finding = check_cgroup(user_group, True, NOBODY.pw_uid, str(root))
    assert finding.level == Level.WARN
    assert finding.found == (f"cgroup v2; user manager's cgroup {USER_GROUP} has: cpu pids; missing: memory")
    assert "`mem` in `pmsd ls` falls back" in finding.why
    assert finding.fix.startswith(f"as root, write {DELEGATE_DROPIN} with the lines below, then `systemctl "
                                  "daemon-reload`, and log out and in again")
    assert finding.fix.endswith(":\n[Service]\nDelegate=cpu cpuset io memory pids")


def test_cgroup_with_every_controller_is_ok(tmp_path: Path) -> None:
    root = cgroup_tree(tmp_path / "cgroup", "cpuset cpu io memory pids", "cpuset cpu io memory pids")
    assert check_cgroup(user_group, True, NOBODY.pw_uid, str(root)).level == Level.OK
    # A manager that cannot say where it lives: the path logind gives user@UID.service.
    assert check_cgroup(no_group, True, NOBODY.pw_uid, str(root)).level == Level.OK


def test_cgroup_controller_the_kernel_lacks(tmp_path: Path) -> None:
    root = cgroup_tree(tmp_path / "cgroup", "cpu io pids", "cpu pids")
    finding = check_cgroup(user_group, True, NOBODY.pw_uid, str(root))
    assert finding.fix.startswith("the kernel has memory off: remove `cgroup_disable=memory`")


def test_cgroup_v1(tmp_path: Path) -> None:
    write(tmp_path / "cgroup" / "unified" / "cgroup.controllers", "")
    finding = check_cgroup(user_group, True, NOBODY.pw_uid, str(tmp_path / "cgroup"))
    assert finding.level == Level.WARN
    assert finding.found == "cgroup v1 (hybrid hierarchy)"
    assert "systemd.unified_cgroup_hierarchy=1" in finding.fix


# ------------------------------------------------------------------------------------------ ports

TCP = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
       "   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  {uid}        0 {inode} 1 0\n"
       "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  {uid}        0 999 1 0\n"
       "   2: 0100007F:0BB8 0100007F:A000 01 00000000:00000000 00:00000000 00000000  {uid}        0 998 1 0\n")
TCP6 = ("  sl  local_address                         remote_address                        st\n"
        "   0: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 "
        "00:00000000 00000000  0        0 997 1 0\n"
        "   1: 00000000000000000000000000000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 "
        "00:00000000 00000000  0        0 996 1 0\n")


def fake_proc(tmp_path: Path, pid: int, inode: int, cgroup: str, comm: str) -> Path:
    proc = tmp_path / "proc"
    (proc / str(pid) / "fd").mkdir(parents=True)
    os.symlink(f"socket:[{inode}]", proc / str(pid) / "fd" / "3")
    os.symlink("/dev/null", proc / str(pid) / "fd" / "0")
    write(proc / str(pid) / "cgroup", f"0::{cgroup}\n")
    write(proc / str(pid) / "comm", f"{comm}\n")
    (proc / "self").mkdir()
    return proc


def test_listeners_from_proc_net_tcp() -> None:
    listeners = parse_listeners(TCP.format(uid=1000, inode=4242))
    assert [(item.address, item.port, item.uid, item.inode) for item in listeners] == [
        ("0.0.0.0", 3000, 1000, 4242), ("127.0.0.1", 8080, 1000, 999)]
    assert [(item.address, item.port) for item in parse_listeners(TCP6)] == [("127.0.0.1", 8081), ("::", 8082)]


def test_a_foreign_listener_on_a_cluster_port_fails(tmp_path: Path) -> None:
    tcp = write(tmp_path / "tcp", TCP.format(uid=NOBODY.pw_uid, inode=4242))
    proc = fake_proc(tmp_path, 777, 4242, "/system.slice/nginx.service", "nginx")
    finding = check_ports({"api": ("3000",)}, user_group, True, NOBODY.pw_uid, [str(tcp)], str(proc))
    assert finding.level == Level.FAIL
    assert finding.found == "api (3000): 0.0.0.0:3000 is held by pid 777 (nginx)"
    assert "Address already in use" in finding.why
    assert finding.fix.startswith("see who: `ss -ltnp 'sport = :3000'`")


def test_pmsd_own_socket_on_its_port_is_ok(tmp_path: Path) -> None:
    tcp = write(tmp_path / "tcp", TCP.format(uid=NOBODY.pw_uid, inode=4242))
    proc = fake_proc(tmp_path, 778, 4242, f"{USER_GROUP}/app.slice/pmsd-api@1.service", "node")
    finding = check_ports({"api": ("3000",)}, user_group, True, NOBODY.pw_uid, [str(tcp)], str(proc))
    assert finding.level == Level.OK
    assert finding.found == "no other process listens on the cluster apps' ports (api 3000)"
    assert is_pmsd_holder(f"{USER_GROUP}/init.scope", USER_GROUP)  # the manager holds it between instances
    assert not is_pmsd_holder("/user.slice/user-1.slice/session-3.scope", USER_GROUP)


def test_ports_of_another_user_and_addresses_that_do_not_clash(tmp_path: Path) -> None:
    tcp = write(tmp_path / "tcp", TCP.format(uid=4_000_000, inode=4242))
    proc = tmp_path / "empty-proc"
    proc.mkdir()
    finding = check_ports({"api": ("3000",), "web": ("127.0.0.2:8080",)}, no_group, True, NOBODY.pw_uid,
                          [str(tcp)], str(proc))
    assert finding.level == Level.FAIL
    assert finding.found == "api (3000): 0.0.0.0:3000 is held by a process of uid 4000000 (as root, `ss -ltnp` " \
        "names it)"
    assert check_ports({}, no_group).found == "no cluster app has a port to check"


# ------------------------------------------------------------------------------------------ systemd, manager


def test_systemd_below_the_floor_fails() -> None:
    finding = check_systemd(FakeManager(version=249), True)
    assert finding.level == Level.FAIL
    assert finding.found == "systemd 249 (user manager): pmsd needs 252 or later"


def test_systemd_features_by_version() -> None:
    features = [("MemoryPeak for `pmsd describe`'s memory peak", 255), ("Newer= for something", 258)]
    older = check_systemd(FakeManager(version=254), True, features)
    assert older.level == Level.OK
    assert older.found == ("systemd 254 (user manager, pmsd needs 252); lacks: MemoryPeak for `pmsd describe`'s "
                           "memory peak (systemd 255), Newer= for something (systemd 258)")
    assert older.fix == "for them, a systemd of 258 or later"
    newer = check_systemd(FakeManager(version=258), True, features)
    assert newer.found == ("systemd 258 (user manager, pmsd needs 252); has: MemoryPeak for `pmsd describe`'s "
                           "memory peak (systemd 255), Newer= for something (systemd 258)")
    assert not newer.why and not newer.fix
    default = check_systemd(FakeManager(version=255), False)
    assert "has: MemoryPeak for `pmsd describe`'s memory peak (systemd 255)" in default.found


def test_manager_reached_and_not(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    environ = {"XDG_RUNTIME_DIR": str(runtime)}
    reached = check_manager(FakeManager(version=257), True, None, environ, NOBODY.pw_uid, str(tmp_path))
    assert reached.found == "the systemd user manager answers through the user bus (systemd 257)"
    error = PmsdError("cannot reach the systemd user manager", "a hint")
    missing = check_manager(FakeManager(), True, error, environ, NOBODY.pw_uid, str(tmp_path))
    assert missing.level == Level.FAIL
    assert missing.found == "cannot reach the systemd user manager"
    assert missing.fix.startswith(f"no {runtime}: no session of yours started your user manager. "
                                  "`loginctl enable-linger nobody`")
    runtime.mkdir()
    stopped = check_manager(FakeManager(), True, error, environ, NOBODY.pw_uid, str(tmp_path))
    assert stopped.fix.startswith(f"your user manager is not running ({runtime}/systemd/private is missing)")
    no_systemd = check_manager(FakeManager(), True, error, environ, NOBODY.pw_uid, str(tmp_path / "none"))
    assert no_systemd.fix.startswith("PID 1 is not systemd here")


# ------------------------------------------------------------------------------------------ god


def pong(version: str = __version__, state_dir: str = "/state") -> PingResult:
    return {"pong": True, "pid": 321, "version": version, "started_at": 0, "apps": 2, "state_dir": state_dir,
            "systemd": 257}


def test_god_states() -> None:
    def ping() -> PingResult:
        return pong()

    assert check_god(FakeManager(), True, True, ping).level == Level.WARN
    assert check_god(FakeManager(god=None), True, False, ping).level == Level.OK
    failed = check_god(FakeManager(god=make_state(active_state="failed", sub_state="failed", result="exit-code",
                                                  exec_main_code=1, exec_main_status=1)), True, False, ping)
    assert failed.level == Level.FAIL
    assert failed.found == "pmsd-god.service failed: exited with status 1 (exit-code)"
    assert "journalctl --user-unit pmsd-god.service -n 50" in failed.fix
    running = check_god(FakeManager(god=make_state()), True, False, ping, "/state")
    assert running.level == Level.OK
    assert running.found == "running, pid 321, pmsd " + __version__ + ", 2 app(s) of /state"


def test_god_that_does_not_answer_or_runs_other_code() -> None:
    def silent() -> PingResult:
        raise PmsdError("pmsd's god is not running (/run/god.sock: Connection refused)")

    quiet = check_god(FakeManager(god=make_state()), True, False, silent)
    assert quiet.level == Level.WARN
    assert quiet.found.endswith("does not answer: pmsd's god is not running (/run/god.sock: Connection refused)")
    old = check_god(FakeManager(god=make_state()), True, False, lambda: pong("0.0.1"))
    assert (old.level, old.fix) == (Level.WARN, "pmsd update")
    other = check_god(FakeManager(god=make_state()), True, False, pong, "/elsewhere")
    assert other.level == Level.WARN
    assert other.found.endswith("this CLI's registry is /elsewhere")


# ------------------------------------------------------------------------------------------ clock


def test_clock(tmp_path: Path) -> None:
    assert check_clock(lambda: 12_000).found == "synchronized (maximum error 12 ms)"
    unsynced = check_clock(lambda: 16_000_000)
    assert unsynced.level == Level.WARN
    assert "cron_restart" in unsynced.why and "timedatectl set-ntp true" in unsynced.fix

    def refused() -> int:
        raise PermissionError(1, "Operation not permitted")

    synced_file = write(tmp_path / "synchronized", "")
    assert check_clock(refused, str(synced_file)).level == Level.OK
    assert check_clock(refused, str(tmp_path / "none")).found.startswith("unknown: Operation not permitted")


# ------------------------------------------------------------------------------------------ all of them


def test_a_check_that_raises_does_not_stop_the_others(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Finding:
        raise RuntimeError("boom")

    monkeypatch.setattr(pmsd.api.doctor, "check_linger", broken)
    monkeypatch.setattr(Context, "manager", property(lambda self: FakeManager()))
    monkeypatch.setattr(pmsd.api.doctor, "control_group", lambda manager: USER_GROUP)
    findings = diagnose(Context(user=True, environ={"PMSD_NO_GOD": "1"}, state_dir=str(env.state)))
    assert tuple(finding.check for finding in findings) == CHECKS
    linger = findings[CHECKS.index("linger")]
    assert linger.level == Level.WARN
    assert linger.found == "could not be checked: RuntimeError: boom"
    assert "bug in pmsd" in linger.why
    assert findings[CHECKS.index("systemd")].found.startswith("systemd 257")
    assert findings[CHECKS.index("ports")].found == "no cluster app has a port to check"
    with pytest.raises(RuntimeError):
        run_check("linger", lambda: broken(), {"PMSD_DEBUG": "1"})


def test_no_manager_fails_once_and_the_rest_point_at_it(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_manager(self: Context) -> None:
        raise PmsdError("cannot reach the systemd user manager", "a hint")

    monkeypatch.setattr(Context, "manager", property(no_manager))
    findings = {finding.check: finding for finding in
                diagnose(Context(user=True, environ={"PMSD_NO_GOD": ""}, state_dir=str(env.state)))}
    assert findings["manager"].level == Level.FAIL
    for check in ("systemd", "god"):
        assert findings[check].found == "could not be checked: the systemd user manager cannot be reached " \
            "(see `manager`)"


def test_cluster_apps_ports_come_from_the_registry(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from pmsd.state.registry import Registry

    with Registry(str(env.state)).transaction() as data:
        data.apps += [make_record(0, name="api", exec_mode="cluster", port="127.0.0.1:3000"),
                      make_record(1, name="api", exec_mode="cluster", port="127.0.0.1:3000"),
                      make_record(2, name="worker")]
    ctx = Context(user=True, environ={}, state_dir=str(env.state))
    assert pmsd.api.doctor.cluster_addresses(ctx) == {"api": ("127.0.0.1:3000",)}


# ------------------------------------------------------------------------------------------ rendering, CLI

FINDINGS = [
    Finding("manager", Level.OK, "the systemd user manager answers through /run/user/1000/systemd/private"),
    Finding("linger", Level.WARN, "user ann does not linger", "apps end with your last session",
            "loginctl enable-linger ann"),
    Finding("journald-storage", Level.FAIL, "Storage=none", "no logs", "write x.conf:\n[Journal]\nStorage=auto"),
]


def test_text_rendering() -> None:
    assert render_text(FINDINGS, "user", colour=False) == (
        "pmsd doctor: the systemd user manager and this host\n"
        "OK    manager           the systemd user manager answers through /run/user/1000/systemd/private\n"
        "WARN  linger            user ann does not linger\n"
        "      why: apps end with your last session\n"
        "      fix: loginctl enable-linger ann\n"
        "FAIL  journald-storage  Storage=none\n"
        "      why: no logs\n"
        "      fix: write x.conf:\n"
        "           [Journal]\n"
        "           Storage=auto\n"
        "1 failure, 1 warning in 3 checks\n")
    coloured = render_text(FINDINGS, "user", colour=True)
    assert "\x1b[32mOK  \x1b[0m  manager" in coloured
    assert "\x1b[33mWARN\x1b[0m  linger" in coloured
    assert "\x1b[31mFAIL\x1b[0m  journald-storage" in coloured


def test_json_rendering() -> None:
    data = json.loads(render_json(FINDINGS, "system"))
    assert data["scope"] == "system"
    assert data["status"] == "fail"
    assert data["findings"][1] == {"check": "linger", "level": "warn", "found": "user ann does not linger",
                                   "why": "apps end with your last session", "fix": "loginctl enable-linger ann"}
    assert worst(FINDINGS[:2]) == Level.WARN
    assert worst([]) == Level.OK


@pytest.mark.parametrize(("findings", "status"), [(FINDINGS, 1), (FINDINGS[:2], 0), (FINDINGS[:1], 0)])
def test_doctor_command_exit_status(env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                    findings: list[Finding], status: int) -> None:
    monkeypatch.setattr(pmsd.api.doctor, "diagnose", lambda ctx: findings)
    result = run(capsys, "doctor")
    assert result.status == status, result.err
    assert result.out.startswith("pmsd doctor: the systemd user manager and this host\nOK    manager")
    assert "\x1b[" not in result.out  # NO_COLOR, and not a terminal
    result = run(capsys, "doctor", "--json")
    assert result.status == status
    assert [item["check"] for item in json.loads(result.out)["findings"]] == [f.check for f in findings]


def test_doctor_help(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "doctor", "--help")
    assert result.status == 0
    text = " ".join(result.out.split())
    for part in ("--json", "lingering", "cgroup v2", "journald", "Exit status 1 when a check fails"):
        assert part in text, part
