#!/usr/bin/env python3
"""Write pmsd(1) and pmsd-god(1) from the CLI's own help texts and the settings table.

    make-manpage.py OUTDIR     write OUTDIR/pmsd.1 and OUTDIR/pmsd-god.1
    make-manpage.py --check    import every pmsd module and run every command's --help; exit 1 on a failure

The help texts are read from the click command typer builds (each parameter's get_help_record, the same text
`pmsd CMD --help` prints) rather than by parsing `--help` output, whose layout differs between typer 0.7
(Debian 12), typer with rich (boxes) and later click versions. The ECOSYSTEM KEYS section is
pmsd.definition.settings.SETTINGS, the table that also drives validation and the units.
debian/rules runs both modes against the installed tree (PYTHONPATH=debian/pmsd/usr/lib/python3/dist-packages).
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import inspect
import io
import os
import pkgutil
import sys
import traceback
from typing import Any


def roff(text: str) -> str:
    """Escape text for a roff line: backslashes, and a leading '.' or "'" that roff would read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def paragraphs(text: str) -> list[str]:
    """Help text as roff: prose paragraphs filled, indented lines (examples) kept as they are."""
    out: list[str] = []
    for block in inspect.cleandoc(text).split("\f")[0].split("\n\n"):
        lines = block.splitlines()
        if not lines:
            continue
        if all(line.startswith("  ") for line in lines):
            out += [".PP", ".nf", ".RS 4", *(roff(line.strip()) for line in lines), ".RE", ".fi"]
        else:
            out += [".PP", roff(" ".join(line.strip() for line in lines))]
    return out


def command_tree() -> tuple[Any, Any]:
    import click
    import typer.main

    from pmsd.cli.app import app

    group = typer.main.get_command(app)
    return group, click.Context(group, info_name="pmsd")


def option_lines(command: Any, ctx: Any) -> list[str]:
    import click

    out: list[str] = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if isinstance(param, click.Argument):
            name, text = param.human_readable_name.upper(), getattr(param, "help", None) or ""
        else:
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
        out += [".TP", f"\\fB{roff(name)}\\fR", roff(" ".join(text.split())) if text else ""]
    return out


def pmsd_page(date: str) -> str:
    from pmsd import __version__
    from pmsd.definition.settings import SETTINGS
    from pmsd.errors import ExitStatus

    group, ctx = command_tree()
    lines = [f'.TH PMSD 1 "{date}" "pmsd {__version__}" "User Commands"',
             ".SH NAME", "pmsd \\- process manager with PM2's commands, supervised by systemd",
             ".SH SYNOPSIS", "\\fBpmsd\\fR [\\fB\\-\\-user\\fR|\\fB\\-\\-system\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]",
             ".SH DESCRIPTION", *paragraphs(group.help or ""),
             ".SH GLOBAL OPTIONS", *option_lines(group, ctx),
             ".SH COMMANDS"]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = type(ctx)(command, info_name=name, parent=ctx)
        usage = " ".join(command.collect_usage_pieces(sub))
        lines += [".SS " + roff(f"pmsd {name} {usage}".strip()), *paragraphs(command.help or "")]
        options = option_lines(command, sub)
        if options:
            lines += [".PP", "Options:", ".RS 4", *options, ".RE"]
    lines += [".SH ECOSYSTEM KEYS",
              ".PP", "The keys of an app in an ecosystem file (ecosystem.config.js, JSON, YAML or TOML), with the "
              "\\fBpmsd start\\fR flag that sets the same option and the systemd directives it becomes."]
    for setting in SETTINGS:
        flags = [f for f in (setting.flag, *setting.more_flags, setting.short) if f]
        details = []
        if setting.aliases:
            details.append("Also spelled: " + ", ".join(setting.aliases) + ".")
        if flags:
            details.append("Flag: " + ", ".join(flags) + ".")
        if setting.directives:
            details.append("systemd: " + ", ".join(f"{d.name}=" for d in setting.directives) + ".")
        if setting.by_god:
            details.append("Enforced by pmsd-god.")
        lines += [".TP", f"\\fB{roff(setting.key)}\\fR", roff(" ".join(setting.help.split()))]
        lines += [".br", roff(" ".join(details))] if details else []
    lines += [".SH EXIT STATUS"]
    for status in ExitStatus:
        lines += [".TP", f"\\fB{int(status)}\\fR", status.name.replace("_", " ").lower()]
    lines += [".SH ENVIRONMENT",
              ".TP", "\\fBPMSD_DEBUG\\fR", "Set: show the traceback of every error.",
              ".TP", "\\fBNO_COLOR\\fR", "Set: no colours.",
              ".SH FILES",
              ".TP", "\\fI/usr/lib/systemd/user/pmsd\\-god.service\\fR, "
              "\\fI/usr/lib/systemd/system/pmsd\\-god.service\\fR",
              "god's units; installing pmsd enables and starts neither.",
              ".TP", "\\fI~/.local/state/pmsd/\\fR, \\fI/var/lib/pmsd/\\fR",
              "The apps' definitions (registry, saved list), for the user and the system manager.",
              ".TP", "\\fI/usr/share/pmsd/templates/\\fR", "Unit templates of cluster apps.",
              ".SH SEE ALSO", "\\fBpmsd\\-god\\fR(1), \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), "
              "\\fBsystemd.service\\fR(5), \\fBsystemd.exec\\fR(5)"]
    return "\n".join(lines) + "\n"


def god_page(date: str) -> str:
    from pmsd import __version__

    return "\n".join([
        f'.TH PMSD\\-GOD 1 "{date}" "pmsd {__version__}" "User Commands"',
        ".SH NAME", "pmsd\\-god \\- pmsd's daemon: PM2's events, counters, backoff, memory and watch restarts",
        ".SH SYNOPSIS", "\\fBpmsd\\-god\\fR [\\fB\\-\\-user\\fR|\\fB\\-\\-system\\fR]",
        ".SH DESCRIPTION",
        ".PP", "Runs in the foreground as \\fBpmsd\\-god.service\\fR (Type=notify) of the user manager "
        "(\\fB\\-\\-user\\fR, the default) or of the system manager (\\fB\\-\\-system\\fR). "
        "\\fBpmsd ping\\fR, and any pmsd command that needs god, starts it; it is not meant to be run by hand.",
        ".PP", "No app depends on god: apps keep running, restarting and logging while god is stopped, crashed or "
        "upgraded. After an upgrade of the package, the system manager's god is restarted by the package; "
        "each user runs \\fBpmsd update\\fR for theirs.",
        ".SH SEE ALSO", "\\fBpmsd\\fR(1), \\fBsystemd.service\\fR(5)",
    ]) + "\n"


def check() -> int:
    """Import every module and run every command's --help in-process; print what failed."""
    import pmsd

    failures: list[str] = []
    for module in pkgutil.walk_packages(pmsd.__path__, "pmsd."):
        if module.name.endswith("__main__"):
            continue  # runs the CLI on import
        try:
            importlib.import_module(module.name)
        except Exception:
            failures.append(f"import {module.name}:\n{traceback.format_exc()}")
    from pmsd.cli.main import main
    from pmsd.god.daemon import main as god_main

    group, ctx = command_tree()
    visible = [name for name in group.list_commands(ctx) if not group.get_command(ctx, name).hidden]
    for argv in ([], ["--help"], *([name, "--help"] for name in visible)):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                status = main(list(argv))
        except BaseException:
            failures.append(f"pmsd {' '.join(argv)}:\n{traceback.format_exc()}")
            continue
        if argv and (status != 0 or "Usage:" not in out.getvalue()):
            failures.append(f"pmsd {' '.join(argv)}: exit {status}\n{out.getvalue()}")
    with contextlib.redirect_stdout(io.StringIO()):
        if god_main(["--help"]) != 0:
            failures.append("pmsd-god --help failed")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"make-manpage --check: {len(visible)} commands, {len(failures)} failures", file=sys.stderr)
    return 1 if failures else 0


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        return check()
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    # dpkg-buildpackage sets SOURCE_DATE_EPOCH from debian/changelog: the page does not change between builds.
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", datetime.datetime.now().timestamp()))
    date = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d")
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, text in (("pmsd.1", pmsd_page(date)), ("pmsd-god.1", god_page(date))):
        with open(os.path.join(sys.argv[1], name), "w", encoding="utf-8") as file:
            file.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
