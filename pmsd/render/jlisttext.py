"""`pmsd jlist`'s text from templates: each app's entry encoded once as JSON with holes where its runtime values
go (pid, monit, status, ...), and filled in at every listing.

Building the 1,000 entries of `pmsd jlist` as dicts and encoding them took ~60 ms of every run here (issue 17),
although only ten values of each change from one listing to the next. god keeps the templates of its apps
(warm(), before it forks the command): the command, a fork of god, finds them made, and writes the list as
text joined around the values. The text is exactly pmsd.render.jlist.render_json's, key order included: the
template is that very encoding, with markers put in place of the runtime values and cut out again.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence

from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec
from pmsd.model.status import ProcessInfo
from pmsd.render.jlist import process_dict, record_entry

# What with_runtime() fills in: top-level keys, then pm2_env's.
TOP_SLOTS = ("pid", "monit")
ENV_SLOTS = ("status", "restart_time", "unstable_restarts", "pm_uptime", "exit_code", "unique_id", "unit_name",
             "invocation_id")
SLOTS = TOP_SLOTS + ENV_SLOTS
# A marker no record holds: NUL cannot be in an argument, an environment value or a path (execve), and a record
# that held it anyway gives a template with another number of holes, which is not used.
_MARKER = "\x00pmsd-runtime-{}\x00"
_HOLE = re.compile(re.escape(json.dumps(_MARKER.format("@"))).replace("@", "([0-9]+)"))
_encode_string = json.encoder.encode_basestring  # C; what json.dumps uses with ensure_ascii=False

# A record's entry as a %-pattern: its JSON text, "%" doubled, with "%s" for each hole, the holes in SLOTS order
# (record_entry's order). %-formatting, not str.format: ~2.5x faster on 1,000 entries of ~1.4 kB.
Template = str
TemplateKey = tuple[int, int, int | None, int | None, int, bool]
# By template_key(); each entry holds the spec whose id() is in its key, so that the id is not reused meanwhile.
_TEMPLATES: dict[TemplateKey, tuple[AppSpec, Template | None]] = {}


def template_key(record: AppRecord, user: bool) -> TemplateKey:
    """What record_entry() reads of a record. The spec by identity: registry reads hand out copies of the records
    they parsed, which share their (frozen) spec; a changed record is parsed again, into a new spec."""
    return id(record.spec), record.pm_id, record.instance, record.increment, record.created_at, user


def make_template(record: AppRecord, user: bool) -> Template | None:
    """The record's entry as JSON, cut at its runtime values; None if the cut does not come out right."""
    entry = record_entry(record, user)
    for index, key in enumerate(TOP_SLOTS):
        entry[key] = _MARKER.format(index)
    for index, key in enumerate(ENV_SLOTS, len(TOP_SLOTS)):
        entry["pm2_env"][key] = _MARKER.format(index)
    pieces = _HOLE.split(json.dumps(entry, ensure_ascii=False, check_circular=False))
    if [int(slot) for slot in pieces[1::2]] != list(range(len(SLOTS))):
        return None
    return "%s".join(text.replace("%", "%%") for text in pieces[0::2])


def kept_template(record: AppRecord, user: bool) -> Template | None:
    """The record's template if god made it (warm()); None otherwise: making one costs more than encoding the
    entry once, so a command making its own would only be slower."""
    kept = _TEMPLATES.get(template_key(record, user))
    return kept[1] if kept is not None else None


def warm(records: Iterable[AppRecord], user: bool) -> None:
    """Keep the templates of these records, and only theirs (god, before it forks `pmsd jlist`; ~1 ms at 1,000
    apps once made)."""
    kept = {}
    for record in records:
        key = template_key(record, user)
        kept[key] = _TEMPLATES.get(key) or (record.spec, make_template(record, user))
    _TEMPLATES.clear()
    _TEMPLATES.update(kept)


def _number(value: float) -> str:
    """An int or float as json.dumps writes it (int.__repr__, float.__repr__; NaN and infinities its way)."""
    return repr(value) if isinstance(value, int) or math.isfinite(value) else json.dumps(value)


def _runtime(info: ProcessInfo) -> tuple[str, ...]:
    """The slots' values (SLOTS), as with_runtime() sets them, as JSON text."""
    invocation = _encode_string(info.invocation_id) if info.invocation_id else "null"
    return (repr(info.pid), f'{{"memory": {info.memory_bytes!r}, "cpu": {_number(info.cpu_percent)}}}',
            _encode_string(str(info.status)), repr(info.restart_time), repr(info.unstable_restarts),
            repr(info.uptime_since_ms), "null" if info.exit_code is None else repr(info.exit_code), invocation,
            _encode_string(info.unit), invocation)


def render_json(infos: Sequence[ProcessInfo], user: bool) -> str:
    """pmsd.render.jlist.render_json's text: from the templates god kept, each other entry encoded whole."""
    entries = []
    for info in infos:
        made = kept_template(info.record, user)
        if made is None:
            entries.append(json.dumps(process_dict(info, user), ensure_ascii=False, check_circular=False))
            continue
        entries.append(made % _runtime(info))
    return "[" + ", ".join(entries) + "]\n"
