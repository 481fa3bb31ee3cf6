"""Decide what systemd executes for a script, the way PM2 does.

PM2 picks the interpreter by extension (.js node, .py python3, .sh bash, ...), runs anything else directly,
and treats a script that is not a file as a command on PATH. systemd needs an absolute path in ExecStart=,
so the interpreter is resolved on the PATH the app will run with, once, at start.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from pmsd.errors import UsageError

INTERPRETER_BY_EXTENSION: dict[str, str] = {
    ".js": "node", ".cjs": "node", ".mjs": "node",
    ".ts": "ts-node", ".coffee": "coffee", ".ls": "lsc",
    ".py": "python3", ".sh": "bash", ".rb": "ruby", ".php": "php", ".pl": "perl",
}


@dataclass(frozen=True)
class Program:
    script: str  # absolute script path, or the command as found on PATH
    interpreter: str  # absolute interpreter path, or "none" when the script is executed directly
    exec_path: str  # what systemd executes
    argv: tuple[str, ...]


def resolve_program(
    script: str, cwd: str, interpreter: str | None, interpreter_args: tuple[str, ...], args: tuple[str, ...],
    path_env: str | None,
) -> Program:
    script_path = os.path.normpath(os.path.join(cwd, os.path.expanduser(script)))
    is_file = os.path.isfile(script_path)
    if not is_file:
        if os.sep in script or os.path.splitext(script)[1] in INTERPRETER_BY_EXTENSION:
            raise UsageError(
                f"script not found: {script_path}",
                "check the path (relative paths start from the app's cwd), or give a command on PATH",
            )
        found = shutil.which(script, path=path_env)
        if found is None:
            raise UsageError(f"script not found: {script!r} is neither a file in {cwd} nor a command on PATH")
        script_path = os.path.abspath(found)  # a relative PATH entry finds a relative path; systemd wants it absolute
    wanted = interpreter if interpreter is not None else _interpreter_for(script_path, is_file)
    if wanted == "none":
        if not os.access(script_path, os.X_OK):
            raise UsageError(
                f"{script_path} is not executable and pmsd knows no interpreter for it",
                "pass --interpreter <program>, or chmod +x the script",
            )
        return Program(script_path, "none", script_path, (script_path, *args))
    interpreter_path = _find_interpreter(wanted, path_env)
    argv = (interpreter_path, *interpreter_args, script_path, *args)
    return Program(script_path, interpreter_path, interpreter_path, argv)


def _interpreter_for(script_path: str, is_file: bool) -> str:
    if not is_file:
        return "none"
    return INTERPRETER_BY_EXTENSION.get(os.path.splitext(script_path)[1].lower(), "none")


def _find_interpreter(name: str, path_env: str | None) -> str:
    if os.path.isabs(name):
        if not os.access(name, os.X_OK):
            raise UsageError(f"interpreter {name} does not exist or is not executable")
        return name
    found = shutil.which(name, path=path_env)
    if found is None:
        raise UsageError(
            f"interpreter {name!r} not found on PATH",
            f"install {name}, or pass --interpreter with an absolute path",
        )
    return os.path.abspath(found)
