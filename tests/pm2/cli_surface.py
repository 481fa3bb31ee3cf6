"""PM2 7.0.4's command line, row by row, and what pmsd's CLI does with each command and global option.

One row per line of `pm2 --help` (81 commands, `*` included; 67 options), names as PM2 lists them there. Each
row has a class:

- `same`: pmsd accepts PM2's spelling and does what PM2 does.
- `differs`: pmsd accepts it and does it differently on purpose; `why` says how (README, "Where pmsd differs",
  or the command's own help). For an option, `pmsd` may be another spelling (`-u --user` is `--uid`).
- `elsewhere`: it belongs to PM2's daemon, modules, instrumentation or PM2 Plus. A command prints one line
  saying what to use instead (pmsd/cli/elsewhere.py); an option is accepted and ignored (pmsd/cli/grammar.py).
- `missing`: a gap. pmsd refuses at least one of PM2's spellings, or accepts it only to warn that it is not
  honoured (`why` says which).

`pmsd` is how pmsd spells it: for a command, its names; for an option, the command that takes it ("" for
pmsd's global options) and its flags, "/"-separated: "start --name/-n". tests/pm2/test_cli_surface.py holds
the table to what the CLI does; tests/pm2/surface_counts.py prints the counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Surface(StrEnum):
    SAME = "same"
    DIFFERS = "differs"
    ELSEWHERE = "elsewhere"
    MISSING = "missing"


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]  # as `pm2 --help` lists them on one line: ("delete", "del")
    surface: Surface
    pmsd: tuple[str, ...]  # pmsd's names for it; () when missing
    why: str = ""


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]  # as `pm2 --help` lists them on one line: ("-n", "--name")
    surface: Surface
    command: str  # the pmsd command that takes it; "" for a global option (`pmsd --version`)
    flags: tuple[str, ...]  # pmsd's spelling; () when pmsd has none
    why: str = ""

    @property
    def pmsd(self) -> str:
        return " ".join(part for part in (self.command, "/".join(self.flags)) if part)


CATCH_ALL = "*"  # PM2's unknown-command handler


def _command(spelling: str, surface: Surface, why: str = "") -> Command:
    names = tuple(spelling.split("|"))
    return Command(names, surface, () if surface is Surface.MISSING or names == (CATCH_ALL,) else names, why)


def _option(spelling: str, surface: Surface, pmsd: str = "", why: str = "") -> Option:
    """`spelling` as PM2 lists it ("-n --name"); `pmsd` as "[command] flag/flag" ("start --name/-n")."""
    words = pmsd.split()
    command = words[0] if words and not words[0].startswith("-") else ""
    flags = tuple(words[-1].split("/")) if words and words[-1].startswith("-") else ()
    return Option(tuple(spelling.replace(",", " ").split()), surface, command, flags, why)


SAME, DIFFERS, ELSEWHERE, MISSING = Surface.SAME, Surface.DIFFERS, Surface.ELSEWHERE, Surface.MISSING
_GLOBAL_SETTINGS = ("pmsd's own global settings (log rotation, PM2's default log paths), with pm2-logrotate's "
                    "key names; no module store")
_NAMES_UNIQUE = "names are unique (README, Where pmsd differs)"
_LOG_SHAPE = ("shapes what `pmsd logs` prints, not the files: no process sits between the app and its files "
              "(README, Logs)")
_NOT_HONOURED = "accepted, with a warning that it is not honoured"

COMMANDS: tuple[Command, ...] = (
    _command("start", DIFFERS, "-f on a running app starts a copy named app-1, numeric names and `all` are "
             "refused, a command string keeps its whole name: " + _NAMES_UNIQUE),
    _command("trigger", ELSEWHERE),
    _command("deploy", ELSEWHERE),
    _command("startOrRestart", SAME),
    _command("startOrReload", SAME),
    _command("pid", SAME),
    _command("create", ELSEWHERE),
    _command("startOrGracefulReload", SAME),
    _command("stop", SAME),
    _command("restart", DIFFERS, "--name renames exactly one app: " + _NAMES_UNIQUE),
    _command("scale", SAME),
    _command("profile:mem", ELSEWHERE),
    _command("profile:cpu", ELSEWHERE),
    _command("reload", SAME),
    _command("id", SAME),
    _command("inspect", ELSEWHERE),
    _command("delete|del", SAME),
    _command("sendSignal", SAME),
    _command("ping", SAME),
    _command("updatePM2", SAME),
    _command("update", SAME),
    _command("install|module:install", ELSEWHERE),
    _command("module:update", ELSEWHERE),
    _command("module:generate", ELSEWHERE),
    _command("uninstall|module:uninstall", ELSEWHERE),
    _command("package", ELSEWHERE),
    _command("publish|module:publish", ELSEWHERE),
    _command("set", DIFFERS, _GLOBAL_SETTINGS),
    _command("multiset", ELSEWHERE),
    _command("get", DIFFERS, _GLOBAL_SETTINGS),
    _command("conf", ELSEWHERE),
    _command("config", ELSEWHERE),
    _command("unset", DIFFERS, _GLOBAL_SETTINGS),
    _command("report", SAME),
    _command("link", ELSEWHERE),
    _command("unlink", ELSEWHERE),
    _command("monitor", ELSEWHERE),
    _command("unmonitor", ELSEWHERE),
    _command("open", ELSEWHERE),
    _command("plus|register", ELSEWHERE),
    _command("login", ELSEWHERE),
    _command("logout", ELSEWHERE),
    _command("dump|save", DIFFERS, "the save is dump.json in pmsd's state directory, with a backup generation "
             "read when it is damaged; PM2's dump.pm2 moves over with `resurrect --pm2`"),
    _command("cleardump", SAME),
    _command("send", ELSEWHERE),
    _command("attach", ELSEWHERE),
    _command("resurrect", DIFFERS, "puts back saved apps pmsd lacks and starts the saved-running ones that are "
             "down, so it is idempotent; apps PM2 saved stopped stay stopped"),
    _command("unstartup", SAME),
    _command("startup", DIFFERS, "a unit that runs `pmsd resurrect` when the manager starts, no init script for "
             "a daemon; user mode turns lingering on (README, Boot)"),
    _command("logrotate", ELSEWHERE),
    _command("ecosystem|init", SAME),
    _command("reset", SAME),
    _command("describe", SAME),
    _command("desc", SAME),
    _command("info", SAME),
    _command("show", SAME),
    _command("env", SAME),
    _command("list|ls", SAME),
    _command("l", SAME),
    _command("ps", SAME),
    _command("status", SAME),
    _command("jlist", DIFFERS, "pm_out_log_path/pm_err_log_path are null for streams that go to the journal "
             "(README, Where pmsd differs)"),
    _command("slist|sysinfos", ELSEWHERE),
    _command("prettylist", SAME),
    _command("monit", DIFFERS, "pmsd's own live view (curses): CPU and memory of the whole unit cgroup with "
             "sparklines, the app's journal or files, keys to restart, stop and reload; no custom metrics (pmx)"),
    _command("imonit", DIFFERS, "the same view as `pmsd monit` (PM2's older monitor)"),
    _command("dashboard|dash", ELSEWHERE),
    _command("flush", DIFFERS, "journald cannot delete one unit's lines: `pmsd logs` starts after the flush "
             "(README, Logs)"),
    _command("reloadLogs", DIFFERS, "nothing to reopen: journald rotates itself, files stay open until a "
             "restart (README, Logs)"),
    _command("logs", DIFFERS, "stdout and stderr share one journal stream: --out/--err show only apps with "
             "out_file/error_file (README, Logs)"),
    _command("kill", SAME),
    _command("pull", ELSEWHERE),
    _command("forward", ELSEWHERE),
    _command("backward", ELSEWHERE),
    _command("deepUpdate", ELSEWHERE),
    _command("serve|expose", ELSEWHERE),
    _command("autoinstall", ELSEWHERE),
    _command("examples", SAME),
    _command("install-otel", ELSEWHERE),
    _command("uninstall-otel", ELSEWHERE),
    _command(CATCH_ALL, DIFFERS, "an unknown command is a usage error, exit status 2 where PM2 exits 1 "
             "(README, Exit statuses)"),
)

OPTIONS: tuple[Option, ...] = (
    _option("-V, --version", SAME, "--version/-V"),
    _option("-v --version", SAME, "--version/-v"),
    _option("-s --silent", SAME, "start --silent/-s"),
    _option("--ext", SAME, "start --ext"),
    _option("-n --name", SAME, "start --name/-n"),
    _option("-m --mini-list", SAME, "start --mini-list/-m"),
    _option("--interpreter", SAME, "start --interpreter"),
    _option("--interpreter-args", SAME, "start --interpreter-args"),
    _option("--node-args", SAME, "start --node-args"),
    _option("-o --output", SAME, "start --output/-o"),
    _option("-e --error", SAME, "start --error/-e"),
    _option("-l --log", DIFFERS, "start --log/-l", "alone, lines stay in the journal (no default file); next "
            "to -o/-e it is ignored: systemd writes a stream to one file (README, Logs)"),
    _option("--filter-env", SAME, "start --filter-env"),
    _option("--log-type", DIFFERS, "start --log-type", _LOG_SHAPE),
    _option("--log-date-format", DIFFERS, "start --log-date-format", _LOG_SHAPE),
    _option("--time", DIFFERS, "start --time", _LOG_SHAPE),
    _option("--disable-logs", SAME, "start --disable-logs"),
    _option("--env", SAME, "start --env"),
    _option("-a --update-env", SAME, "start --update-env/-a"),
    _option("-f --force", DIFFERS, "start --force/-f", "the copy of a running app is named app-1: "
            + _NAMES_UNIQUE),
    _option("-i --instances", DIFFERS, "start --instances/-i", "instances are units pmsd-<app>@<n> sharing a "
            "systemd socket, no master process (README, Cluster mode)"),
    _option("--parallel", DIFFERS, "start --parallel", "accepted; pmsd acts on apps one at a time"),
    _option("--shutdown-with-message", SAME, "start --shutdown-with-message"),
    _option("-p --pid", MISSING, "start --pid/-p", _NOT_HONOURED + ": no pid file is written"),
    _option("-k --kill-timeout", SAME, "start --kill-timeout/-k"),
    _option("--listen-timeout", DIFFERS, "start --listen-timeout", "a Node app not ready by then is online, as in "
            "PM2; another language's app fails its start (TimeoutStartSec=; README, Cluster mode)"),
    _option("--max-memory-restart", DIFFERS, "start --max-memory-restart", "the whole unit's memory, children "
            "included, not the main process's RSS (README, god)"),
    _option("--restart-delay", SAME, "start --restart-delay"),
    _option("--exp-backoff-restart-delay", SAME, "start --exp-backoff-restart-delay"),
    _option("-x --execute-command", SAME, "start --execute-command/-x"),
    _option("--max-restarts", SAME, "start --max-restarts"),
    _option("-u --user", DIFFERS, "start --uid", "`--user` is pmsd's scope switch (your user manager); the "
            "app's user is --uid (README, System mode)"),
    _option("--uid", DIFFERS, "start --uid", "system mode only; the app gets its user's environment, none of "
            "the shell's (README, System mode)"),
    _option("--gid", DIFFERS, "start --gid", "system mode only (README, System mode)"),
    _option("--namespace", SAME, "start --namespace"),
    _option("--cwd", SAME, "start --cwd"),
    _option("--hp", MISSING, "", "`pmsd startup` sets up the manager of the user who runs it: run it as "
            "that user"),
    _option("--wait-ip", SAME, "startup --wait-ip"),
    _option("--service-name", SAME, "startup --service-name"),
    _option("-c --cron", SAME, "start --cron/-c"),
    _option("-c --cron-restart", SAME, "start --cron-restart/-c"),
    _option("-w --write", DIFFERS, "start --write/-w", "<name>-pm2.json holds pmsd's definition of the app (an "
            "ecosystem app `pmsd start` reads back), not PM2's internal app_conf"),
    _option("--no-daemon", DIFFERS, "start --no-daemon", "refused with the reason: pmsd has no daemon to run in "
            "the foreground, systemd runs the apps"),
    _option("--source-map-support", ELSEWHERE, "start --source-map-support"),
    _option("--only", SAME, "start --only"),
    _option("--disable-source-map-support", ELSEWHERE, "start --disable-source-map-support"),
    _option("--wait-ready", SAME, "start --wait-ready"),
    _option("--merge-logs", SAME, "start --merge-logs"),
    _option("--watch", SAME, "start --watch"),
    _option("--ignore-watch", SAME, "start --ignore-watch"),
    _option("--watch-delay", SAME, "start --watch-delay"),
    _option("--no-color", SAME, "start --no-color"),
    _option("--no-vizion", ELSEWHERE, "start --no-vizion"),
    _option("--no-autostart", SAME, "start --no-autostart"),
    _option("--no-autorestart", SAME, "start --no-autorestart"),
    _option("--stop-exit-codes", SAME, "start --stop-exit-codes"),
    _option("--no-treekill", DIFFERS, "start --no-treekill", "what is left when the main process exits is "
            "killed (KillMode=mixed), where PM2 leaves it running (README)"),
    _option("--no-pmx", ELSEWHERE, "start --no-pmx"),
    _option("--no-automation", ELSEWHERE, "start --no-automation"),
    _option("--trace", ELSEWHERE, "start --trace"),
    _option("--disable-trace", ELSEWHERE, "start --disable-trace"),
    _option("--sort", SAME, "ls --sort"),
    _option("--attach", SAME, "start --attach"),
    _option("--v8", ELSEWHERE, "start --v8"),
    _option("--event-loop-inspector", ELSEWHERE, "start --event-loop-inspector"),
    _option("--deep-monitoring", ELSEWHERE, "start --deep-monitoring"),
    _option("-h, --help", SAME, "--help/-h"),
)

# pmsd's commands that PM2 does not have, or spells only as an alias pmsd adds.
PMSD_ONLY = ("events", "log", "export", "metrics", "doctor")
