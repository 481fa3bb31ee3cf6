"""`pmsd start`'s flags, declared once: the settings table's flags plus the few that are not app options.

The typer command's parameters and the fast-path parser are both built from `start_flags()`, so the two
cannot disagree about what `pmsd start` accepts. PM2's flags whose value may be left out (`--watch [paths]`,
`-l [path]`, `--filter-env [envs]`) or that take several (`--stop-exit-codes <codes...>`) are rewritten by
`normalize_start_argv` into one `--flag=value` word first, for both parsers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pmsd.definition.settings import SETTINGS, parse_bool
from pmsd.definition.watch_ext import ignore_all_but
from pmsd.errors import UsageError


@dataclass(frozen=True)
class Flag:
    dest: str  # parameter name; for app options, the PM2 key
    names: tuple[str, ...]
    switch: bool  # takes no value
    help: str
    app_option: bool  # an override of the app definition (a settings-table row)
    default: Any = None  # the option's default, to turn a switch into the value it asks for
    optional: str | None = None  # the value when the flag is given without one
    variadic: bool = False  # takes every following value that `_VARIADIC_VALUE` matches
    repeat: bool = False  # given again, adds to its values (joined with ",") instead of replacing them
    flag_parse: Callable[[str], Any] | None = None  # the flag's value into the option's
    unsupported: str | None = None  # PM2's key for a flag pmsd accepts but does not honour (a warning says so)
    ignored: bool = False  # PM2 instrumentation (PM2 Plus, pmx, vizion, tracing): accepted, no meaning here
    refused: str | None = None  # a PM2 flag whose request pmsd cannot meet: the error, and nothing happens


START_TARGET_HELP = ("A script, a command in quotes (\"npm run dev\", run by the shell), an ecosystem file "
                     "(.json .yaml .yml .toml .config.js), or an existing name/id/namespace/'all' to restart.")
START_ARGS_HELP = "Arguments for the script, after `--`."
IGNORED_HELP = "Ignored: PM2 instrumentation (PM2 Plus, pmx, vizion, tracing) has no meaning in pmsd."

_EXTRA = (
    Flag("node_args", ("--node-args",), False, "Alias of --interpreter-args.", False),
    Flag("env", ("--env",), False, "Use env_<ENV> from the ecosystem file.", False),
    Flag("force", ("--force", "-f"), True, "Start another copy of a running script.", False),
    Flag("update_env", ("--update-env", "-a"), True, "When restarting, take the current environment instead "
         "of the stored one.", False),
    Flag("only", ("--only",), False, "Ecosystem files: only these apps (a,b).", False),
    Flag("execute_command", ("--execute-command", "-x"), True, "Fork mode (exec_mode fork), as PM2's -x.", False),
    Flag("silent", ("--silent", "-s"), True, "Print nothing but errors and warnings.", False),
    Flag("mini_list", ("--mini-list", "-m"), True, "Afterwards, list apps as `pmsd ls -m` does.", False),
    Flag("no_color", ("--no-color",), True, "No colours (as NO_COLOR=1).", False),
    Flag("parallel", ("--parallel",), False, "Accepted for PM2's scripts; pmsd acts on apps one at a time.",
         False),
    Flag("filter_env", ("--filter-env",), False, "Leave out the environment pmsd start ran in: alone, all of it; "
         "with names (repeatable, or A,B), its variables whose names contain them.", True, default=False,
         optional="true", repeat=True),
    Flag("treekill", ("--no-treekill",), True, "Send the stop signal to the app's main process only "
         "(KillMode=mixed); what is left once it exits is killed.", True, default=True),
    Flag("write", ("--write", "-w"), True, "Also write each started app's definition to <name>-pm2.json in the "
         "current directory, as PM2 does; `pmsd start <name>-pm2.json` starts it again.", False),
    # PM2 flags with no effect under pmsd: accepted, and the start warns why (settings.NO_EFFECT).
    Flag("pid_file", ("--pid", "-p"), False, "No effect (a warning says so): systemd tracks the main pid; "
         "`pmsd pid <app>` prints it.", False, unsupported="pid_file"),
    Flag("ext", ("--ext",), False, "Watch only files with these extensions (js,json), as PM2 does: the files "
         "under the current directory with other extensions become ignore_watch.", False),
    Flag("attach", ("--attach",), True, "Then follow the started apps' logs, as `pmsd logs` does (Ctrl-C stops "
         "following; the apps keep running).", False),
    Flag("no_daemon", ("--no-daemon",), True, "Refused: PM2 then runs its daemon in the foreground; pmsd has "
         "none, systemd runs the apps (`pmsd logs` follows them).", False,
         refused="--no-daemon: pmsd has no daemon to run in the foreground; systemd runs the apps"),
)
_IGNORED = ("--no-vizion", "--no-pmx", "--no-automation", "--trace", "--disable-trace", "--v8",
            "--event-loop-inspector", "--deep-monitoring", "--source-map-support", "--disable-source-map-support")
IGNORED_FLAGS = tuple(Flag("ignored_" + name[2:].replace("-", "_"), (name,), True, IGNORED_HELP, False,
                           ignored=True) for name in _IGNORED)
OUTPUT_KEYS = ("silent", "mini_list", "no_color")
_VARIADIC_VALUE = re.compile(r"^\d+(,\d+)*,?$")


def start_flags() -> tuple[Flag, ...]:
    table = tuple(
        Flag(s.key, (s.flag, *s.more_flags) + ((s.short,) if s.short else ()), s.parse is parse_bool or s.switch,
             s.flag_help or s.help, True, s.default, optional=s.optional, variadic=s.variadic,
             repeat=s.optional is not None and s.key == "watch", flag_parse=s.flag_parse)
        for s in SETTINGS if s.flag and s.flag.startswith("--") and " " not in s.flag
    )
    return table + _EXTRA + IGNORED_FLAGS


def _flag_value(flag: Flag, value: str) -> object:
    if flag.flag_parse is not None:
        try:
            return flag.flag_parse(value)
        except ValueError as error:
            raise UsageError(f"{flag.names[0]}: {error}", getattr(error, "hint", None)) from None
    if flag.dest == "watch" and value.lower() not in ("true", "false"):
        return [path for path in value.split(",") if path]
    return value


def start_request(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The target and StartOptions fields from parsed parameters (by either parser)."""
    overrides: dict[str, object] = {}
    for flag in start_flags():
        value = params.get(flag.dest)
        if value is None or value is False:
            continue
        if flag.refused:
            raise UsageError(flag.refused, "start the app without it, then `pmsd logs <app>` to follow it; in a "
                             "container, run the app itself in the foreground")
        if flag.unsupported:
            # Not a setting: the definition's builder names it among PM2 options it does not honour.
            overrides[flag.unsupported] = True if flag.switch else value
        if not flag.app_option:
            continue
        if flag.dest == "log_file" and value == "":
            continue  # `-l` alone asks for PM2's default log file: the journal keeps the lines
        # A switch says what the user asked for: --no-autorestart sets autorestart to false.
        overrides[flag.dest] = (not flag.default) if flag.switch else _flag_value(flag, value)
    if params.get("ext"):
        try:
            overrides["ignore_watch"] = ignore_all_but(os.getcwd(), str(params["ext"]))
        except ValueError as error:
            raise UsageError(f"--ext: {error}") from None
    if params.get("node_args") is not None and "interpreter_args" not in overrides:
        overrides["interpreter_args"] = params["node_args"]
    if params.get("execute_command") and "exec_mode" not in overrides:
        overrides["exec_mode"] = "fork"
    if params.get("args"):
        overrides["args"] = list(params["args"])
    only = params.get("only") or ""
    options = {"overrides": overrides, "env_name": params.get("env"), "force": bool(params.get("force")),
               "update_env": bool(params.get("update_env")),
               "only": tuple(part for part in only.split(",") if part)}
    return str(params["target"]), options


def output_request(params: dict[str, Any]) -> dict[str, bool]:
    """How the command's result is shown: -s, -m, --no-color."""
    return {key: bool(params.get(key)) for key in OUTPUT_KEYS}


def normalize_start_argv(argv: list[str], flags: tuple[Flag, ...] | None = None) -> list[str]:
    """Give PM2's optional-value and variadic flags one `--flag=value` word each, so that both parsers read
    them alike. An optional value is taken from the next word only after the script (target) was given and
    when it is not an option: `pmsd start app.js --watch src` watches src, `pmsd start --watch app.js` starts
    app.js and watches its cwd. Repeated flags (--watch a --watch b) join their values with ","."""
    by_name = {name: flag for flag in (flags or start_flags()) for name in flag.names}
    out: list[str] = []
    merged: dict[str, int] = {}  # dest -> index in out of its first (joined) word
    seen_target = False
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            out.extend(argv[index:])
            break
        name, has_value, inline = word.partition("=")
        flag = by_name.get(name) if word.startswith("-") and word != "-" else None
        if flag is None:
            seen_target = seen_target or not word.startswith("-") or word == "-"
            out.append(word)
        elif flag.switch:
            out.append(word)
        elif flag.variadic and not has_value:
            values = []
            while index + 1 < len(argv) and _VARIADIC_VALUE.match(argv[index + 1]):
                index += 1
                values.append(argv[index].rstrip(","))
            out.append(f"{flag.names[0]}={','.join(values)}" if values else word)
        elif flag.optional is not None:
            if not has_value:
                following = argv[index + 1] if index + 1 < len(argv) else None
                taken = seen_target and following is not None and (
                    not following.startswith("-") or following == "-")
                inline = following if taken and following is not None else flag.optional
                index += 1 if taken else 0
            _add_optional(out, merged, flag, inline)
        else:
            out.append(word)
            if not has_value and index + 1 < len(argv):  # the value is the next word, whatever it looks like
                index += 1
                out.append(argv[index])
        index += 1
    return out


def _add_optional(out: list[str], merged: dict[str, int], flag: Flag, value: str) -> None:
    """`--flag=value` (the long name: click reads `-l=x` as the value "=x"), or the value joined to an earlier
    occurrence of a repeatable flag."""
    if flag.repeat and flag.dest in merged:
        out[merged[flag.dest]] = _joined(out[merged[flag.dest]], value, flag.optional or "")
        return
    merged[flag.dest] = len(out)
    out.append(f"{flag.names[0]}={value}")


def _joined(word: str, value: str, bare: str) -> str:
    """`--watch=a` and another value: `--watch=a,b` (a bare flag adds nothing to given paths)."""
    name, _, current = word.partition("=")
    values = [part for part in (current, value) if part and part != bare]
    return f"{name}={','.join(values) if values else bare}"


def parse_start(argv: list[str]) -> dict[str, Any] | None:
    """Parse `start` arguments (already normalized); None when anything is not plainly understood (typer then
    explains)."""
    by_name = {name: flag for flag in start_flags() for name in flag.names}
    params: dict[str, Any] = {"args": []}
    positionals: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            params["args"].extend(argv[index + 1 :])
            break
        if word.startswith("-") and word != "-":
            name, has_value, inline = word.partition("=")
            flag = by_name.get(name)
            if flag is None or (has_value and not word.startswith("--")):
                return None  # click reads `-c=x` as the value "=x" (as PM2's commander does): typer's to say
            if flag.switch:
                if has_value:
                    return None
                params[flag.dest] = True
            elif has_value:
                params[flag.dest] = inline
            elif index + 1 < len(argv):
                index += 1
                params[flag.dest] = argv[index]
            else:
                return None
        else:
            positionals.append(word)
        index += 1
    if not positionals:
        return None
    params["target"] = positionals[0]
    params["args"] = positionals[1:] + params["args"]
    return params
