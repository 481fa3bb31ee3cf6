"""The fast path for the commands run most: `ls` and its aliases, `jlist`, `prettylist` (no options),
`logs` (its few flags) and `start` (its flags come from cli/grammar.py, shared with typer), and `monit`
(no options), whose start-up is part of what it promises, and `metrics` (no options: scraped often).

`pmsd ls` should cost little more than the D-Bus calls it makes, and `pmsd logs` little more than the journal
reads; importing typer (and click) alone costs more than either. Anything this parser does not fully
understand (--help, an unknown option, a typo) goes to the typer CLI, which defines the grammar and help
text; tests/unit check that both accept the same `logs` options.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pmsd.cli import delegate
from pmsd.context import Context

LS_ALIASES = ("ls", "list", "status", "l", "ps")
LS_FLAGS = ("--mini-list", "-m", "--watch")
LS_VALUE_OPTIONS = ("--sort",)
LOGS_FLAGS = ("--nostream", "--raw", "--json", "--out", "--err")
LOGS_VALUE_OPTIONS = ("--lines", "--timestamp", "--highlight")
PM2_TIMESTAMP = "YYYY-MM-DDTHH:mm:ss"
_MOMENT_TOKENS = re.compile(r"YYYY|YY|MM|DD|HH|hh|mm|ss|SSS|Z")


def normalize_logs_argv(argv: list[str]) -> list[str]:
    """PM2's `--timestamp [format]` takes an optional value: give it the default pattern when the next
    word is not a date pattern (so `pmsd logs --timestamp api` still means app 'api')."""
    out: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        out.append(word)
        if word == "--timestamp":
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is None or following.startswith("-") or not _MOMENT_TOKENS.search(following):
                out.append(PM2_TIMESTAMP)
            else:
                out.append(following)
                index += 1
        index += 1
    return out


def _parse_logs(rest: list[str]) -> dict[str, object] | None:
    options: dict[str, object] = {"target": None}
    index = 0
    while index < len(rest):
        word = rest[index]
        name, has_value, inline = word.partition("=")
        if word in LOGS_FLAGS:
            options[word[2:]] = True
        elif name in LOGS_VALUE_OPTIONS:
            if has_value:  # `--highlight=` is the empty value, as typer reads it, not "take the next word"
                value = inline
            elif index + 1 < len(rest):
                index += 1
                value = rest[index]
            else:
                return None
            if name == "--lines":
                if not (value.isascii() and value.isdigit()) or len(value) > 18:
                    return None  # let typer read it ("²" is a digit to str.isdigit(), not to int()) or explain
                options["lines"] = int(value)
            else:
                options[name[2:]] = value
        elif word.startswith("-") or options["target"] is not None:
            return None
        else:
            options["target"] = word
        index += 1
    return options


def _logs(ctx: Context, rest: list[str]) -> int | None:
    from pmsd.cli import commands

    options = _parse_logs(rest)
    if options is None:
        return None
    return commands.logs(
        ctx, options["target"] if isinstance(options["target"], str) else None,
        lines=int(str(options.get("lines", 15))), stream=not options.get("nostream"),
        raw=bool(options.get("raw")), as_json=bool(options.get("json")),
        timestamp=str(options["timestamp"]) if "timestamp" in options else None,
        out=bool(options.get("out")), err=bool(options.get("err")),
        highlight=str(options["highlight"]) if "highlight" in options else None,
    )


def _start(ctx: Context, rest: list[str]) -> int | None:
    from pmsd.cli import commands
    from pmsd.cli.grammar import parse_start

    params = parse_start(rest)
    return None if params is None else commands.start(ctx, params)


def _ls(ctx: Context, rest: list[str]) -> int | None:
    from pmsd.cli import commands

    sort: str | None = None
    flags: set[str] = set()
    index = 0
    while index < len(rest):
        name, has_value, inline = rest[index].partition("=")
        if rest[index] in LS_FLAGS:
            flags.add(rest[index])
        elif name in LS_VALUE_OPTIONS and has_value:
            sort = inline
        elif name in LS_VALUE_OPTIONS and index + 1 < len(rest):
            index += 1
            sort = rest[index]
        else:
            return None
        index += 1
    return commands.ls(ctx, sort=sort, mini=bool(flags & {"--mini-list", "-m"}), watch="--watch" in flags)


def _table() -> dict[str, Callable[[Context, list[str]], int | None]]:
    from pmsd.cli import commands

    def no_options(command: Callable[[Context], int]) -> Callable[[Context, list[str]], int | None]:
        return lambda ctx, rest: None if rest else command(ctx)

    table: dict[str, Callable[[Context, list[str]], int | None]] = {
        "jlist": no_options(commands.jlist),
        "prettylist": no_options(commands.prettylist),
        "metrics": no_options(commands.metrics),
        "logs": _logs,
        "start": _start,
        "log": _logs,
        "monit": no_options(commands.monit),
        "imonit": no_options(commands.monit),
    }
    for alias in LS_ALIASES:
        table[alias] = _ls
    return table


def try_fast_path(argv: list[str]) -> int | None:
    if not argv or argv[0].startswith("-"):
        return None
    handler = _table().get(argv[0])
    if handler is None or "--help" in argv or "-h" in argv:
        return None
    ctx = Context(user=True, run_by_god=delegate.IN_GOD)
    try:
        return handler(ctx, argv[1:])
    finally:
        from pmsd.cli import commands  # every handler imported it already

        commands.finish(ctx)
