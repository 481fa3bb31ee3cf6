#!/usr/bin/env python3
"""Write pmsd's shell completions from the click command tree typer builds.

    make-completions.py OUTDIR     write OUTDIR/pmsd (bash), OUTDIR/_pmsd (zsh) and OUTDIR/pmsd.fish (fish)

typer's own completion cannot be shipped: typer 0.7 (Debian 12) answers its own `_PMSD_COMPLETE` script with
"Shell complete not supported", later typer (Debian 13) speaks another protocol, and the package is built on one
release and installed on the other. These scripts are self-contained instead: the command names, aliases, options
and help texts are written into them here (as make-manpage.py reads them, from the click command, not from
`--help` output), and only app names are asked for at completion time, from `pmsd jlist`.
debian/rules runs this against the installed tree (PYTHONPATH=debian/pmsd/usr/lib/python3.X/dist-packages).
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

# What an argument's values are. The bash and fish scripts compare these words at completion time.
APP = "app"  # an app name (from `pmsd jlist`) or 'all'
FILE = "file"
APP_OR_FILE = "app+file"  # start: a script or ecosystem file, or an existing app to restart
DIR = "dir"
NONE = "none"  # free text: nothing to offer
WORDS = "words"  # one of Argument.words


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]
    takes_value: bool
    help: str


@dataclass(frozen=True)
class Argument:
    name: str
    kind: str
    variadic: bool
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]  # the command, then its aliases
    help: str
    options: tuple[Option, ...]
    arguments: tuple[Argument, ...]

    def kind_at(self, position: int) -> Argument | None:
        """The argument the position-th word after the command's options fills (0-based)."""
        if position < len(self.arguments):
            return self.arguments[position]
        return self.arguments[-1] if self.arguments and self.arguments[-1].variadic else None


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def argument(param: Any) -> Argument:
    """What a click argument's values are: by its name in pmsd/cli/app.py, and by its help text where one name
    means different things (start's target may be an app, an ecosystem command's target is a file)."""
    from pmsd.cli.app import ECOSYSTEM_HELP
    from pmsd.cli.grammar import START_ARGS_HELP, START_TARGET_HELP

    variadic = param.nargs == -1
    text = getattr(param, "help", None)
    if text == START_TARGET_HELP:
        return Argument(param.name, APP_OR_FILE, variadic)
    if text in (ECOSYSTEM_HELP, START_ARGS_HELP):
        return Argument(param.name, FILE, variadic)
    if param.name in ("target", "targets", "name"):
        return Argument(param.name, APP, variadic)
    if param.name == "directory":
        return Argument(param.name, DIR, variadic)
    if param.name == "signal":
        names = sorted(s.name for s in signal.Signals if not s.name.startswith("SIGRT"))
        return Argument(param.name, WORDS, variadic, tuple(names))
    fixed = {"mode": ("simple",), "platform": ("systemd",)}  # ecosystem's and startup's only accepted values
    if param.name in fixed:
        return Argument(param.name, WORDS, variadic, fixed[param.name])
    return Argument(param.name, NONE, variadic)


def options(command: Any, ctx: Any) -> tuple[Option, ...]:
    import click

    out = []
    for param in command.get_params(ctx):  # get_params adds --help/-h
        if isinstance(param, click.Option) and not param.hidden:
            takes_value = not param.is_flag and not param.count
            out.append(Option((*param.opts, *param.secondary_opts), takes_value, one_line(param.help)))
    return tuple(out)


def command_tree() -> tuple[tuple[Option, ...], tuple[Command, ...]]:
    """The global options, and every visible command with its aliases: the hidden commands registered with the
    same function (typer wraps each function anew, with functools.update_wrapper, hence inspect.unwrap)."""
    import click
    import typer.main

    from pmsd.cli.app import app

    group = typer.main.get_command(app)
    # context_settings as make_context would pass them: they hold help_option_names (-h as well as --help)
    ctx = click.Context(group, info_name="pmsd", **group.context_settings)
    found = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    commands = []
    for name, command in found:
        if command is None or command.hidden:
            continue
        function = inspect.unwrap(command.callback)
        aliases = [alias for alias, other in found
                   if other is not None and other.hidden and inspect.unwrap(other.callback) is function]
        sub = click.Context(command, info_name=name, parent=ctx, **command.context_settings)
        arguments = tuple(argument(p) for p in command.params if isinstance(p, click.Argument))
        commands.append(Command((name, *aliases), one_line(command.get_short_help_str(limit=100)),
                                options(command, sub), arguments))
    return options(group, ctx), tuple(commands)


# The app names of `pmsd jlist`, for the three shells; nothing at all when pmsd fails or prints no JSON (its
# stderr and python's go to /dev/null), and at most 5 s of waiting for a god that does not answer.
JLIST_NAMES = ("""python3 -c 'import json, sys; [print(a["name"]) for a in json.load(sys.stdin) """
               """if isinstance(a, dict) and "name" in a]' 2>/dev/null""")
HEADER = "# {shell} completion for pmsd. Generated by packaging/make-completions.py from pmsd's command tree.\n"


def alike(commands: tuple[Command, ...]) -> list[tuple[list[str], Command]]:
    """Commands with the same options and arguments (startOrRestart, startOrReload, ...), for one `case` branch."""
    branches: dict[tuple[tuple[Option, ...], tuple[Argument, ...]], tuple[list[str], Command]] = {}
    for command in commands:
        branches.setdefault((command.options, command.arguments), ([], command))[0].extend(command.names)
    return list(branches.values())


def words(items: Any) -> str:
    return " ".join(items)


def bash(global_options: tuple[Option, ...], commands: tuple[Command, ...]) -> str:
    cases = []
    for names, command in alike(commands):
        kinds = [a.kind for a in command.arguments]
        rest = kinds[-1] if command.arguments and command.arguments[-1].variadic else NONE
        lists = [a.words for a in command.arguments]
        cases.append(
            f"        {'|'.join(names)})\n"
            f"            options='{words(n for o in command.options for n in o.names)}'\n"
            f"            valued='{words(n for o in command.options if o.takes_value for n in o.names)}'\n"
            f"            kinds=({words(kinds)}); rest={rest}\n"
            f"            fixed=({words(repr(words(w)) for w in lists)}) ;;")
    every = words(n for c in commands for n in c.names)
    return HEADER.format(shell="bash") + f"""
_pmsd_apps() {{
    timeout 5 pmsd "$@" jlist 2>/dev/null | {JLIST_NAMES}
    echo all
}}

# Sets the caller's options, valued (the options that take a value), kinds (of the arguments in order), rest
# (the kind of the arguments after those) and fixed (the words of WORDS arguments) for command $1.
_pmsd_command() {{
    options='' valued='' kinds=() rest=none fixed=()
    case $1 in
{chr(10).join(cases)}
    esac
}}

_pmsd() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} word command='' position=0 skip=0 dashdash=0 i kind
    local options valued kinds rest fixed scope=()
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        if ((skip)); then
            # bash splits --opt=value into --opt, =, value: the value is the word after the =
            skip=0; [[ $word == = ]] && skip=1
            continue
        fi
        if [[ -z $command ]]; then
            case $word in
                --system|--user) scope=("$word") ;;
                -*) ;;
                *) command=$word; _pmsd_command "$command" ;;
            esac
        elif ((!dashdash)) && [[ $word == -- ]]; then
            dashdash=1
        elif ((!dashdash)) && [[ $word == -* ]]; then
            [[ " $valued " == *" $word "* ]] && skip=1
        else
            ((position++))
        fi
    done
    ((skip)) && return 0  # an option's value: the shell's default (files)
    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W '{words(n for o in global_options for n in o.names)}' -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W '{every}' -- "$cur")
        fi
        return 0
    fi
    if ((!dashdash)) && [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
        return 0
    fi
    # past the listed arguments: the last one again if it takes several (rest), else nothing
    kind=$rest; i=$((${{#kinds[@]}} - 1))
    ((position <= i)) && kind=${{kinds[position]}} i=$position
    case $kind in
        {APP}) mapfile -t COMPREPLY < <(compgen -W "$(_pmsd_apps "${{scope[@]}}")" -- "$cur") ;;
        {APP_OR_FILE})
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -W "$(_pmsd_apps "${{scope[@]}}")" -- "$cur"; compgen -f -- "$cur") ;;
        {DIR})
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
        {WORDS}) mapfile -t COMPREPLY < <(compgen -W "${{fixed[i]}}" -- "$cur") ;;
        {FILE}) ;;  # the shell's default
        *) compopt +o default 2>/dev/null ;;
    esac
    return 0
}}

complete -o default -F _pmsd pmsd
"""


def zsh_quote(text: str) -> str:
    """A word in single quotes, for zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def zsh_help(text: str) -> str:
    """Help text for an _arguments [description]."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def zsh_option(option: Option) -> str:
    value = ":value:_files" if option.takes_value else ""
    spec = zsh_quote(f"[{zsh_help(option.help)}]{value}")
    if len(option.names) == 1:
        return zsh_quote(option.names[0]) + spec
    exclusive = zsh_quote(f"({' '.join(option.names)})")
    return exclusive + "{" + ",".join(option.names) + "}" + spec


def zsh_action(arg: Argument) -> str:
    return {APP: "_pmsd_apps", FILE: "_files", APP_OR_FILE: "_pmsd_apps_or_files", DIR: "_files -/",
            WORDS: "(" + " ".join(arg.words) + ")", NONE: " "}[arg.kind]


def zsh(global_options: tuple[Option, ...], commands: tuple[Command, ...]) -> str:
    described = [f"{n}:{c.help if i == 0 else f'alias of {c.names[0]}'}"
                 for c in commands for i, n in enumerate(c.names)]
    cases = []
    for names, command in alike(commands):
        specs = [zsh_option(o) for o in command.options]
        for position, arg in enumerate(command.arguments):
            where = "*" if arg.variadic else str(position + 1)
            specs.append(zsh_quote(f"{where}:{arg.name}:{zsh_action(arg)}"))
        lines = " \\\n                ".join(["_arguments -s -S", *specs])
        cases.append(f"        {'|'.join(names)})\n            {lines} && ret=0 ;;")
    global_specs = " \\\n        ".join(zsh_option(o) for o in global_options)
    return "#compdef pmsd\n" + HEADER.format(shell="zsh") + f"""
_pmsd_apps() {{
    local -a apps expl
    apps=(${{(f)"$(timeout 5 pmsd $_pmsd_scope jlist 2>/dev/null | {JLIST_NAMES})"}} all)
    _wanted apps expl app compadd -a apps
}}

_pmsd_apps_or_files() {{
    _alternative 'apps:app:_pmsd_apps' 'files:file:_files'
}}

_pmsd() {{
    local curcontext=$curcontext state line ret=1
    local -a _pmsd_scope commands
    local -A opt_args
    _arguments -C \\
        {global_specs} \\
        '1:command:->command' \\
        '*::argument:->argument' && ret=0
    case $state in
    command)
        commands=({' '.join(zsh_quote(d) for d in described)})
        _describe -t commands 'pmsd command' commands && ret=0 ;;
    argument)
        (( ${{+opt_args[--system]}} )) && _pmsd_scope=(--system)
        curcontext=${{curcontext%:*:*}}:pmsd-$words[1]:
        case $words[1] in
{chr(10).join(cases)}
        esac ;;
    esac
    return ret
}}

_pmsd "$@"
"""


def fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_option(option: Option, condition: str) -> str:
    flags = []
    for name in option.names:
        if name.startswith("--"):
            flags.append(f"-l {name[2:]}")
        elif len(name) == 2:
            flags.append(f"-s {name[1]}")
        else:
            flags.append(f"-o {name[1:]}")
    value = " -r -F" if option.takes_value else ""
    return f"complete -c pmsd -n {fish_quote(condition)} {' '.join(flags)}{value} -d {fish_quote(option.help)}"


def fish(global_options: tuple[Option, ...], commands: tuple[Command, ...]) -> str:
    cases = []
    lines = [fish_option(o, "__pmsd_needs_command") for o in global_options]
    for command in commands:
        for i, name in enumerate(command.names):
            text = command.help if i == 0 else f"alias of {command.names[0]}"
            lines.append(f"complete -c pmsd -n __pmsd_needs_command -a {name} -d {fish_quote(text)}")
    for names, command in alike(commands):
        kinds = [a.kind for a in command.arguments]
        rest = kinds[-1] if command.arguments and command.arguments[-1].variadic else NONE
        valued = [n for o in command.options if o.takes_value for n in o.names]
        cases.append(f"        case {' '.join(names)}\n"
                     f"            set valued {' '.join(valued)}\n"
                     f"            set kinds {' '.join(kinds)}\n"
                     f"            set rest {rest}")
        condition = "__pmsd_is " + " ".join(names)
        lines += [fish_option(o, condition) for o in command.options]
        for arg in command.arguments:
            if arg.kind == WORDS:
                lines.append(f"complete -c pmsd -n {fish_quote(condition + '; and __pmsd_kind ' + WORDS)} "
                             f"-a {fish_quote(' '.join(arg.words))}")
    return HEADER.format(shell="fish") + f"""
# The command: the first word after pmsd that is not an option (pmsd's global options take no value).
function __pmsd_command
    for word in (commandline -opc)[2..-1]
        string match -q -- '-*' $word; or begin; echo $word; return 0; end
    end
    return 1
end

function __pmsd_needs_command
    not __pmsd_command >/dev/null
end

function __pmsd_is --description 'Whether the command is one of the arguments'
    set -l command (__pmsd_command); or return 1
    contains -- $command $argv
end

# Whether the word being completed is an argument of one of these kinds, counting the command's arguments
# and skipping its options' values.
function __pmsd_kind
    set -l command (__pmsd_command); or return 1
    set -l valued; set -l kinds; set -l rest none
    switch $command
{chr(10).join(cases)}
    end
    set -l seen 0; set -l position 0; set -l skip 0; set -l dashdash 0
    for word in (commandline -opc)[2..-1]
        if test $seen = 0
            test "$word" = "$command"; and set seen 1
        else if test $skip = 1
            set skip 0
        else if test $dashdash = 0; and test "$word" = --
            set dashdash 1
        else if test $dashdash = 0; and string match -q -- '-*' $word
            contains -- $word $valued; and set skip 1
        else
            set position (math $position + 1)
        end
    end
    test $skip = 1; and return 1
    set -l kind $rest
    test $position -lt (count $kinds); and set kind $kinds[(math $position + 1)]
    contains -- $kind $argv
end

function __pmsd_apps
    set -l scope
    contains -- --system (commandline -opc); and set scope --system
    timeout 5 pmsd $scope jlist 2>/dev/null | {JLIST_NAMES}
    echo all
end

complete -c pmsd -f
{chr(10).join(lines)}
complete -c pmsd -n '__pmsd_kind {APP} {APP_OR_FILE}' -a '(__pmsd_apps)'
complete -c pmsd -n '__pmsd_kind {FILE} {APP_OR_FILE}' -F
complete -c pmsd -n '__pmsd_kind {DIR}' -a '(__fish_complete_directories)'
"""


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    global_options, commands = command_tree()
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, text in (("pmsd", bash(global_options, commands)), ("_pmsd", zsh(global_options, commands)),
                       ("pmsd.fish", fish(global_options, commands))):
        with open(os.path.join(sys.argv[1], name), "w", encoding="utf-8") as file:
            file.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
