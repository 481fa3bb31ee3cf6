"""pmsd-god.service, for both managers. The files in units/ are this text with ExecStart=/usr/bin/pmsd-god
(a golden test keeps them equal); a pip-installed pmsd writes it to the manager's runtime unit directory with
its own interpreter when no packaged unit is installed."""

from __future__ import annotations

from pmsd.systemd.paths import scope_flag

# How every god unit pmsd writes begins: what tells pmsd's own file from one an admin put there.
GOD_UNIT_HEAD = "[Unit]\nDescription=pmsd god: "


def god_unit_text(user: bool, exec_start: str) -> str:
    wanted_by = "default.target" if user else "multi-user.target"
    scope = scope_flag(user)
    hardening = "" if user else (
        "# god reads app trees (watch) and writes its state and runtime directories and the apps' log files\n"
        "# (anywhere but /usr, /boot and /etc: \"strict\" made /var/log read-only to it).\n"
        "ProtectSystem=full\nStateDirectory=pmsd\nStateDirectoryMode=0700\nNoNewPrivileges=yes\n")
    return f"""{GOD_UNIT_HEAD}PM2 semantics (events, counters, backoff, memory and watch restarts) for pmsd apps
Documentation=man:systemd.service(5)
# Apps never depend on god: no app unit Requires=, BindsTo= or After= it, so stopping or upgrading god
# leaves every app running, restarting and logging.
# A crash-looping god gives up after 10 starts in a minute; the apps do not notice either way.
StartLimitIntervalSec=60s
StartLimitBurst=10

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start} {scope}
Restart=always
RestartSec=100ms
# SIGTERM to god alone: it finishes the commands its children run for CLIs (pmsd.god.runner), then exits;
# whatever is left is killed then (systemd.kill(5), KillMode=mixed).
KillMode=mixed
# god pings the watchdog every 5 s from its event loop: a loop stuck for 10 s is killed and restarted.
WatchdogSec=10s
# Its socket (god.sock, 0600) lives here; systemd creates it 0700 and removes it when god stops.
RuntimeDirectory=pmsd
RuntimeDirectoryMode=0700
{hardening}
[Install]
WantedBy={wanted_by}
"""
