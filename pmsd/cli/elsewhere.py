"""PM2 commands that belong to PM2's own daemon, its modules or PM2 Plus (its SaaS): pmsd accepts them, and
says in one line what to use instead.

They exit with status 2 (a command pmsd cannot carry out), except the few that ask to remove or turn off
something pmsd never has (unlink, logout, unmonitor, uninstall-otel) or that systemd already does
(logrotate: journald rotates its own files): what a provisioning script asked for is then true, so they
exit 0 and such scripts keep working.
"""

from __future__ import annotations

from pmsd.errors import ExitStatus

_PLUS = "PM2 Plus (pm2.io) is PM2's hosted dashboard; pmsd has none: "
_MODULES = "PM2 modules run inside PM2's daemon; pmsd has no modules: "
_CONF = "PM2's module configuration store has no equivalent: "
_VERSIONING = "PM2 moves an app's git checkout (vizion); pmsd does not touch your code: "

# command -> (what to use instead, exit status)
ELSEWHERE: dict[str, tuple[str, int]] = {
    "trigger": ("pmx actions need PM2's IPC channel; send the app a signal instead: `pmsd sendSignal SIGUSR2 "
                "<app>`", ExitStatus.USAGE),
    "deploy": ("pmsd does not deploy: copy the code with your deployment tool, then run `pmsd startOrReload "
               "ecosystem.config.js` on the host", ExitStatus.USAGE),
    "create": ("use `pmsd ecosystem` to write a starter ecosystem.config.js", ExitStatus.USAGE),
    "profile:mem": ("profile the app with its runtime's tools (Node: --interpreter-args --heapsnapshot-signal="
                    "SIGUSR2, then `pmsd sendSignal SIGUSR2 <app>`)", ExitStatus.USAGE),
    "profile:cpu": ("profile the app with its runtime's tools (Node: --interpreter-args --cpu-prof; any "
                    "process: perf record -p $(pmsd pid <app>))", ExitStatus.USAGE),
    "inspect": ("start the app with its debugger enabled, e.g. `pmsd start app.js --interpreter-args "
                "--inspect`", ExitStatus.USAGE),
    "install": (_MODULES + "run a module as an app (`pmsd start`), or install tools with your package manager",
                ExitStatus.USAGE),
    "module:install": (_MODULES + "run a module as an app (`pmsd start`)", ExitStatus.USAGE),
    "module:update": (_MODULES + "update the app's code, then `pmsd reload <app>`", ExitStatus.USAGE),
    "module:generate": (_MODULES + "write an app and an ecosystem file (`pmsd ecosystem`)", ExitStatus.USAGE),
    "uninstall": (_MODULES + "`pmsd delete <app>` removes an app", ExitStatus.USAGE),
    "module:uninstall": (_MODULES + "`pmsd delete <app>` removes an app", ExitStatus.USAGE),
    "package": (_MODULES + "package apps with your usual tools", ExitStatus.USAGE),
    "publish": (_MODULES + "publish with your package manager", ExitStatus.USAGE),
    "module:publish": (_MODULES + "publish with your package manager", ExitStatus.USAGE),
    "multiset": (_CONF + "put settings in the app's env (ecosystem file)", ExitStatus.USAGE),
    "conf": (_CONF + "`pmsd get` prints pmsd's global settings, `pmsd env <app>` an app's environment",
             ExitStatus.USAGE),
    "config": (_CONF + "`pmsd get` prints pmsd's global settings, `pmsd env <app>` an app's environment",
               ExitStatus.USAGE),
    "link": (_PLUS + "`pmsd ls`, `pmsd events` and `pmsd logs` show the same, journald keeps the logs",
             ExitStatus.USAGE),
    "unlink": (_PLUS + "nothing is linked, nothing to do", ExitStatus.OK),
    "monitor": (_PLUS + "`pmsd events` and `pmsd ls` follow every app already", ExitStatus.USAGE),
    "unmonitor": (_PLUS + "nothing is monitored remotely, nothing to do", ExitStatus.OK),
    "open": (_PLUS + "`pmsd ls` and `systemd-cgtop` show the apps", ExitStatus.USAGE),
    "plus": (_PLUS + "`pmsd ls`, `pmsd events` and `pmsd logs` show the same", ExitStatus.USAGE),
    "register": (_PLUS + "there is no account to create", ExitStatus.USAGE),
    "login": (_PLUS + "there is no account to log in to", ExitStatus.USAGE),
    "logout": (_PLUS + "no account is logged in, nothing to do", ExitStatus.OK),
    "send": ("apps run by systemd have no stdin pipe to write to; talk to the app over a socket or a signal "
             "(`pmsd sendSignal`)", ExitStatus.USAGE),
    "attach": ("apps run by systemd have no stdin pipe to attach to; `pmsd logs <app>` follows the output",
               ExitStatus.USAGE),
    "logrotate": ("journald rotates the journal itself (SystemMaxUse=, MaxFileSec=); for out_file/error_file, "
                  "use logrotate's copytruncate (README, Logs)", ExitStatus.OK),
    "slist": ("use `pmsd report` for pmsd and systemd, and your system's tools (lscpu, free) for the host",
              ExitStatus.USAGE),
    "sysinfos": ("use `pmsd report` for pmsd and systemd, and your system's tools (lscpu, free) for the host",
                 ExitStatus.USAGE),
    "dashboard": ("use `pmsd ls`, `pmsd logs` and `systemd-cgtop`", ExitStatus.USAGE),
    "dash": ("use `pmsd ls`, `pmsd logs` and `systemd-cgtop`", ExitStatus.USAGE),
    "pull": (_VERSIONING + "`git pull` in the app's cwd, then `pmsd reload <app>`", ExitStatus.USAGE),
    "forward": (_VERSIONING + "check out the commit yourself, then `pmsd reload <app>`", ExitStatus.USAGE),
    "backward": (_VERSIONING + "check out the commit yourself, then `pmsd reload <app>`", ExitStatus.USAGE),
    "deepUpdate": ("upgrade pmsd with the tool that installed it (pip, apt), then `pmsd update`",
                   ExitStatus.USAGE),
    "serve": ("pmsd has no static file server: run one as an app, e.g. `pmsd start \"python3 -m http.server "
              "8080\" --name static`", ExitStatus.USAGE),
    "expose": ("pmsd has no static file server: run one as an app, e.g. `pmsd start \"python3 -m http.server "
               "8080\" --name static`", ExitStatus.USAGE),
    "autoinstall": (_MODULES + "there is nothing to install", ExitStatus.USAGE),
    "install-otel": ("pmsd has no tracing: instrument the app with OpenTelemetry's SDK for its language",
                     ExitStatus.USAGE),
    "uninstall-otel": ("pmsd installs no tracing packages, nothing to do", ExitStatus.OK),
}


def message(command: str) -> str:
    return f"[pmsd] `pm2 {command}` is not part of pmsd: {ELSEWHERE[command][0]}"
