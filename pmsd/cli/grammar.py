"""`pmsd start`'s flags, declared once: the settings table's flags plus the few that are not app options.

The typer command's parameters and the fast-path parser are both built from `start_flags()`, so the two
cannot disagree about what `pmsd start` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pmsd.definition.settings import SETTINGS, parse_bool


@dataclass(frozen=True)
class Flag:
    dest: str  # parameter name; for app options, the PM2 key
    names: tuple[str, ...]
    switch: bool  # takes no value
    help: str
    app_option: bool  # an override of the app definition (a settings-table row)
    default: Any = None  # the option's default, to turn a switch into the value it asks for


START_TARGET_HELP = ("A script, an ecosystem file (.json .yaml .yml .toml .config.js), or an existing "
                     "name/id/namespace/'all' to restart.")
START_ARGS_HELP = "Arguments for the script, after `--`."

_EXTRA = (
    Flag("node_args", ("--node-args",), False, "Alias of --interpreter-args.", False),
    Flag("env", ("--env",), False, "Use env_<ENV> from the ecosystem file.", False),
    Flag("force", ("--force", "-f"), True, "Start another copy of a running script.", False),
    Flag("update_env", ("--update-env",), True, "When restarting, take the current environment instead of "
         "the stored one.", False),
    Flag("only", ("--only",), False, "Ecosystem files: only these apps (a,b).", False),
)


def start_flags() -> tuple[Flag, ...]:
    table = tuple(
        Flag(s.key, (s.flag,) + ((s.short,) if s.short else ()), s.parse is parse_bool or s.switch,
             s.flag_help or s.help, True, s.default)
        for s in SETTINGS if s.flag and s.flag.startswith("--") and " " not in s.flag
    )
    return table + _EXTRA


def start_request(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The target and StartOptions fields from parsed parameters (by either parser)."""
    overrides: dict[str, object] = {}
    for flag in start_flags():
        value = params.get(flag.dest)
        if not flag.app_option or value is None or value is False:
            continue
        # A switch says what the user asked for: --no-autorestart sets autorestart to false.
        overrides[flag.dest] = (not flag.default) if flag.switch else value
    if params.get("node_args") is not None and "interpreter_args" not in overrides:
        overrides["interpreter_args"] = params["node_args"]
    if params.get("args"):
        overrides["args"] = list(params["args"])
    only = params.get("only") or ""
    options = {"overrides": overrides, "env_name": params.get("env"), "force": bool(params.get("force")),
               "update_env": bool(params.get("update_env")),
               "only": tuple(part for part in only.split(",") if part)}
    return str(params["target"]), options


def parse_start(argv: list[str]) -> dict[str, Any] | None:
    """Parse `start` arguments; None when anything is not plainly understood (typer then explains)."""
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
            if flag is None:
                return None
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
