"""PM2's target grammar: which apps a command's targets mean.

One target is, in the order PM2 7 tries them (lib/API.js `_operate`, lib/Client.js `getProcessIdByName`):

- `all`: every app;
- `/regex/`: the apps whose name the regular expression matches anywhere (PM2 tests `regex.test(name)`, an
  unanchored search; pmsd uses Python's `re` syntax);
- an ecosystem file that exists: the apps it declares (by name, `only` narrowing them) that are registered;
- a name, or a script path (the apps whose script is that file, resolved from the working directory): PM2
  looks both up at once. For a number, an app *named* so wins over the id, as in PM2;
- an id;
- a namespace, when no name or script matched;
- `-`: the apps of a JSON definition read from stdin (`{apps: [...]}`, one app, or a list), as an ecosystem
  file's (PM2's `stop -`, `restart -`, `delete -`; `start -` is pmsd.api.lifecycle's).

Several targets mean the union, in the order given, each app once. Targets are parsed first (a bad regular
expression or a broken ecosystem file is a UsageError), then matched against the registry (a target matching
nothing is a NotFoundError), so a command can refuse bad input before it has any effect.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO, TypeAlias

from pmsd.definition import ecosystem
from pmsd.definition.ecosystem import is_ecosystem_file, load_apps
from pmsd.errors import NotFoundError, UsageError
from pmsd.model.record import AppRecord, RegistryData

LS_HINT = "`pmsd ls` lists ids and names"
Targets: TypeAlias = str | Sequence[str]
STDIN = "-"  # the target that means "the definition on stdin"
STDIN_LABEL = "stdin"  # how errors and Source name it
STDIN_HINT = "pipe a JSON app definition, e.g. `cat apps.json | pmsd start -`"


@dataclass(frozen=True)
class Target:
    """One parsed target. kind: "all", "regex", "ecosystem" or "word" (a name, script path, id or namespace)."""

    text: str
    kind: str
    pattern: re.Pattern[str] | None = None
    names: tuple[str, ...] = ()  # an ecosystem file's apps, after `only`
    script: str = ""  # a word read as a script path, absolute


def target_list(target: Targets) -> tuple[str, ...]:
    """A str is one target; a sequence is several. No target at all is a usage error."""
    targets = (target,) if isinstance(target, str) else tuple(target)
    if not targets:
        raise UsageError("no target given", "name an app, an id, a namespace, a script, an ecosystem file or `all`")
    return targets


def is_regex(text: str) -> bool:
    return len(text) >= 2 and text.startswith("/") and text.endswith("/")


def read_stdin_apps(stream: TextIO | None = None) -> list[Mapping[str, object]]:
    """The raw apps of the JSON definition on stdin (`{apps: [...]}`, one app, or a list), read to its end;
    a UsageError (exit status 2) when stdin is a terminal, unreadable, empty, not JSON (with line:column) or
    declares no apps. PM2 evaluates piped text as a JavaScript object literal; pmsd reads JSON."""
    stream = sys.stdin if stream is None else stream
    if stream is None or stream.closed:
        raise UsageError("`-` reads an app definition from stdin, which is closed", STDIN_HINT)
    try:
        if stream.isatty():
            raise UsageError("`-` reads an app definition from stdin, which is a terminal", STDIN_HINT)
        text = stream.read()
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the app definition from stdin: {error}", STDIN_HINT) from None
    if not text.strip():
        raise UsageError("stdin is empty: `-` reads an app definition from it", STDIN_HINT)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{STDIN_LABEL}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}",
                         STDIN_HINT) from None
    except (ValueError, RecursionError) as error:  # a number int() does not read, nesting past the recursion limit
        raise ecosystem.unreadable(STDIN_LABEL, "JSON", error) from None
    try:
        return apps_of(document, STDIN_LABEL)
    except UsageError as error:
        raise UsageError(error.message, error.hint or STDIN_HINT) from None


def apps_of(document: object, label: str) -> list[Mapping[str, object]]:
    """The raw apps of a parsed ecosystem document, as pmsd.definition.ecosystem reads a file's (the one place
    outside it that reads a document's shape)."""
    return ecosystem._apps_of(document, label)  # a file's shape is a document's shape


def parse_targets(target: Targets, only: Sequence[str] = (), cwd: str | None = None,
                  stdin: Sequence[Mapping[str, object]] | None = None, env_name: str | None = None) -> list[Target]:
    """Every target parsed, or a UsageError/NotFoundError naming the first bad one; nothing read but files (and
    stdin, once, for `-`; `stdin` gives those apps instead). env_name: `--env`, which names a file's apps
    that have append_env_to_name."""
    base = cwd if cwd is not None else os.getcwd()
    texts = target_list(target)
    if STDIN in texts and stdin is None:
        stdin = read_stdin_apps()
    return [_parse(text, tuple(only), base, stdin or (), env_name) for text in texts]


def _parse(text: str, only: tuple[str, ...], cwd: str, stdin: Sequence[Mapping[str, object]],
           env_name: str | None) -> Target:
    if text == STDIN:
        return Target(text, "ecosystem", names=names_of(stdin, STDIN_LABEL, only, env_name))
    if text == "all":
        return Target(text, "all")
    if is_regex(text):
        try:
            pattern = re.compile(text[1:-1])
        except (re.error, RecursionError, OverflowError) as error:  # nesting, repetitions `re` cannot hold
            raise UsageError(f"invalid regular expression {text}: {error}",
                             "targets of the form /.../ are Python regular expressions matched against app names"
                             ) from None
        return Target(text, "regex", pattern=pattern)
    path = os.path.join(cwd, text)
    if is_ecosystem_file(text) and os.path.isfile(path):
        return Target(text, "ecosystem", names=ecosystem_names(path, only, env_name))
    return Target(text, "word", script=os.path.normpath(os.path.join(cwd, os.path.expanduser(text))))


def ecosystem_names(path: str, only: Sequence[str] = (), env_name: str | None = None) -> tuple[str, ...]:
    """The names of the apps an ecosystem file declares (a missing name is the script's, as PM2 derives it),
    narrowed to `only`; NotFoundError when `only` names an app the file does not declare."""
    return names_of(load_apps(path), os.path.relpath(path), only, env_name)


def names_of(apps: Sequence[Mapping[str, object]], label: str, only: Sequence[str] = (),
             env_name: str | None = None) -> tuple[str, ...]:
    """ecosystem_names for apps already read (from a file or stdin, `label`)."""
    from pmsd.definition.build import declared_name  # lazy: the settings table is not needed to list apps

    names: list[str] = []
    for raw in apps:
        name = declared_name(raw, env_name)
        if name and name not in names:
            names.append(name)
    if only:
        missing = [name for name in only if name not in names]
        if missing:
            raise NotFoundError(f"{label} has no app named {', '.join(missing)} (--only)")
        names = [name for name in names if name in only]
    return tuple(names)


def select(data: RegistryData, targets: Sequence[Target]) -> list[AppRecord]:
    """The records the parsed targets mean: the union, in the targets' order, each once."""
    chosen: dict[int, AppRecord] = {}
    for target in targets:
        for record in _match(data, target):
            chosen.setdefault(record.pm_id, record)
    return list(chosen.values())


def _by_id(records: list[AppRecord]) -> list[AppRecord]:
    return sorted(records, key=lambda a: a.pm_id)


def _match(data: RegistryData, target: Target) -> list[AppRecord]:
    if target.kind == "all":
        return _by_id(data.apps)  # empty when nothing is registered: each command says what that means
    if target.kind == "regex":
        assert target.pattern is not None
        pattern = target.pattern
        found = _by_id([a for a in data.apps if pattern.search(a.name)])
        if not found:
            raise NotFoundError(f"no app name matches {target.text}", LS_HINT)
        return found
    if target.kind == "ecosystem":
        found = [record for name in target.names for record in data.instances_of(name)]
        if not found:
            where = STDIN_LABEL if target.text == STDIN else target.text
            raise NotFoundError(f"none of the apps of {where} is registered "
                                f"({', '.join(target.names) or 'it declares none'})", LS_HINT)
        return found
    return _match_word(data, target)


def _match_word(data: RegistryData, target: Target) -> list[AppRecord]:
    text = target.text
    # PM2 looks a word up as a name and as a script path at once; for a number, a name wins over the id.
    found = data.instances_of(text) + _by_id([a for a in data.apps if _same_file(a.spec.script, target.script)])
    if found:
        return list({record.pm_id: record for record in found}.values())
    if text.isascii() and text.isdigit():  # "²" is a name (as in PM2); 5000 digits are no id, and not for int()
        record = data.by_id(int(text)) if len(text) <= 18 else None
        if record is None:
            raise NotFoundError(f"no app with id {text[:18]}{'...' if len(text) > 18 else ''}", LS_HINT)
        return [record]
    in_namespace = _by_id([a for a in data.apps if a.spec.namespace == text])
    if in_namespace:
        return in_namespace
    raise NotFoundError(f"no app, id or namespace named {text!r}", LS_HINT)


def _same_file(script: str, path: str) -> bool:
    # As PM2 compares pm_exec_path with path.resolve(target): the paths, not the files (no symlink followed),
    # the way pmsd.definition.interpreter stored the script.
    return os.path.normpath(script) == path


def resolve_targets(data: RegistryData, target: Targets, only: Sequence[str] = (),
                    cwd: str | None = None) -> list[AppRecord]:
    """PM2's target grammar (see the module's doc): one target or several, the union of what they mean."""
    return select(data, parse_targets(target, only, cwd))
