"""The fast path for read-only commands that take no options.

`pmsd ls` should cost little more than the D-Bus calls it makes; importing typer (and click) alone costs
more than those calls and the rendering together. Commands with the plain grammar below run without it;
anything else (an option, --help, a typo) goes to the typer CLI, which is the single definition of the
grammar and the help text.
"""

from __future__ import annotations

from collections.abc import Callable

from pmsd.context import Context

LS_ALIASES = ("ls", "list", "status", "l", "ps")


def _table() -> dict[str, Callable[[Context, list[str]], int]]:
    from pmsd.cli import commands

    table: dict[str, Callable[[Context, list[str]], int]] = {
        "jlist": lambda ctx, rest: commands.jlist(ctx),
        "prettylist": lambda ctx, rest: commands.prettylist(ctx),
    }
    for alias in LS_ALIASES:
        table[alias] = lambda ctx, rest: commands.ls(ctx)
    return table


def try_fast_path(argv: list[str]) -> int | None:
    if not argv or len(argv) > 1 or argv[0].startswith("-"):
        return None
    handler = _table().get(argv[0])
    if handler is None:
        return None
    ctx = Context(user=True)
    try:
        return handler(ctx, argv[1:])
    finally:
        ctx.close()
