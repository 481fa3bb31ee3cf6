"""The unit `pmsd startup` installs: at boot (when the manager starts) it runs `pmsd resurrect`.

Design (issue 14): pmsd keeps apps as transient units, which a manager forgets at reboot, so one oneshot
unit recreates them from the save (pmsd.api.persistence) rather than persistent unit files per app, which
pmsd's transient units would collide with (a unit name with a fragment on disk cannot be started as a
transient unit). It needs nothing but the save and pmsd itself: god is not involved (resurrect starts it when
it can), and an app that fails to start does not keep the others down. README, "Boot", has the figures.
"""

from __future__ import annotations

from pmsd.definition.unitvalues import exec_argv, exec_line, exec_word
from pmsd.systemd.paths import scope_flag

# "pmsd." like pmsd's other units of its own (pmsd.listen-<app>, pmsd.cron-<app>): no app's unit
# (pmsd-<name>.service) can be named so, whatever the app is called.
STARTUP_UNIT = "pmsd.resurrect.service"


def startup_unit_text(user: bool, python: str, state_dir: str, wait_network: bool, no_god: bool = False) -> str:
    """The unit for this scope; `python` runs pmsd (`python -m pmsd`, the interpreter pmsd is installed for),
    `state_dir` is where the save is, pinned so that the boot-time environment cannot move it. no_god: startup
    ran with PMSD_NO_GOD=1, and so does the resurrect at boot (apps without god's policies)."""
    wanted_by = "default.target" if user else "multi-user.target"
    network = ("# --wait-ip: apps start once the network is up (network-online.target).\n"
               "Wants=network-online.target\nAfter=network-online.target\n") if wait_network else ""
    command = exec_line(python, exec_argv([python, "-P", "-m", "pmsd", scope_flag(user), "resurrect", "--silent"]))
    return f"""# Written by `pmsd startup`; `pmsd unstartup` removes it.
[Unit]
Description=pmsd: bring back the apps `pmsd save` recorded
Documentation=man:systemd.service(5)
{network}
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={command}
Environment={exec_word("PMSD_STATE_DIR=" + state_dir)}{" PMSD_NO_GOD=1" if no_god else ""}
# Starting many apps takes a while; a start that hangs is ended after this.
TimeoutStartSec=10min

[Install]
WantedBy={wanted_by}
"""
