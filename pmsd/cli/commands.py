"""What each command prints, given parsed arguments. Shared by the typer CLI and the fast path."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pmsd.context import Context
from pmsd.errors import ExitStatus
from pmsd.lifecycle import Outcome


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def show_warnings(ctx: Context) -> None:
    for warning in ctx.warnings:
        print(f"[pmsd][WARN] {warning}", file=sys.stderr)
    ctx.warnings.clear()


def ls(ctx: Context) -> int:
    from pmsd.query import list_processes
    from pmsd.registry import now_ms
    from pmsd.render.table import render

    sys.stdout.write(render(list_processes(ctx), now_ms(), _colour()))
    return ExitStatus.OK


def jlist(ctx: Context) -> int:
    from pmsd.query import list_processes
    from pmsd.render.jlist import render_json

    sys.stdout.write(render_json(list_processes(ctx), ctx.user))
    return ExitStatus.OK


def prettylist(ctx: Context) -> int:
    from pmsd.query import list_processes
    from pmsd.render.jlist import render_pretty

    sys.stdout.write(render_pretty(list_processes(ctx), ctx.user))
    return ExitStatus.OK


def pid(ctx: Context, target: str | None) -> int:
    from pmsd.query import list_processes

    for info in list_processes(ctx, target):
        if info.pid or target is not None:
            print(info.pid)
    return ExitStatus.OK


def ids(ctx: Context, name: str) -> int:
    data = ctx.registry.read()
    found = sorted(app.pm_id for app in data.apps if app.name == name)
    # PM2 prints the array as Node shows it: "[ 0 ]", or "[]" when nothing matches.
    print("[ " + ", ".join(map(str, found)) + " ]" if found else "[]")
    return ExitStatus.OK


def report(ctx: Context, outcomes: Sequence[Outcome], verb: str) -> int:
    show_warnings(ctx)
    for outcome in outcomes:
        print(f"[pmsd] {verb} {outcome.name} (id {outcome.pm_id}): {outcome.action}")
    if not outcomes:
        print("[pmsd] nothing to do")
    return ls(ctx)


def describe(ctx: Context, target: str) -> int:
    from pmsd.query import list_processes
    from pmsd.registry import now_ms
    from pmsd.render.describe import render
    from pmsd.spec import UnitInputs
    from pmsd.units import render_unit_file

    for info in list_processes(ctx, target):
        inputs = UnitInputs(info.record.spec, ctx.registry.env_file(info.pm_id))
        unit_file = render_unit_file(inputs, ctx.manager.version, system=not ctx.user)
        sys.stdout.write(render(info, now_ms(), ctx.user, unit_file))
    return ExitStatus.OK


def env(ctx: Context, target: str) -> int:
    from pmsd.lifecycle import environment

    for key, value in sorted(environment(ctx, target).items()):
        print(f"{key}: {value}")
    return ExitStatus.OK
