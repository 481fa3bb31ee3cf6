"""`pmsd jlist`'s text from each record's entry encoded ahead, with markers where the runtime values go (issue 17).

The CLI encodes every record's entry while god works out the apps' state (list_processes' `meanwhile`, on the
other core); once god answers, what is left is writing ten values per app into those texts. The text is the one
json.dumps(entries, ensure_ascii=False) gives for pmsd.render.jlist's entries, character for character
(tests/unit/test_render.py compares them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from json.encoder import encode_basestring  # json.dumps's own string encoder for ensure_ascii=False
from typing import Any

from pmsd.model.record import AppRecord
from pmsd.model.status import ProcessInfo
from pmsd.render.jlist import RUNTIME_SLOTS, record_entry, runtime_values, with_runtime

# A marker is a string no app value can hold (NUL: no name, path, argument or environment value carries one);
# encoded, it reads "\u0000<n>\u0000", quotes included.
_MARKED = re.compile(r'"\\u0000(\d+)\\u0000"')


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, check_circular=False)


def template(record: AppRecord, user: bool) -> str | None:
    """The record's entry as text, a str.format field where each runtime value goes; None when a value of the
    record spells a marker after all (that entry is then encoded whole)."""
    entry = record_entry(record, user)
    pm2_env = entry["pm2_env"]
    for number, path in enumerate(RUNTIME_SLOTS):
        (entry if len(path) == 1 else pm2_env)[path[-1]] = f"\x00{number}\x00"
    parts = _MARKED.split(_dumps(entry).replace("{", "{{").replace("}", "}}"))
    if sorted(parts[1::2]) != sorted(str(number) for number in range(len(RUNTIME_SLOTS))):
        return None
    return "".join(part if index % 2 == 0 else f"{{{part}}}" for index, part in enumerate(parts))


def filled(text: str, info: ProcessInfo) -> str:
    return text.format(*[_encoded(value) for value in runtime_values(info)])


def _encoded(value: Any) -> str:
    """value as json.dumps writes it; the runtime values' types without its overhead (~2 us a call)."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        encoded: str = encode_basestring(value)
        return encoded
    if kind is dict and len(value) == 2:  # monit
        memory, cpu = value.get("memory"), value.get("cpu")
        if type(memory) is int and type(cpu) is float and math.isfinite(cpu):
            return f'{{"memory": {int.__repr__(memory)}, "cpu": {float.__repr__(cpu)}}}'
    return _dumps(value)


class PreparedJson:
    """Each record's template, made while god reads the apps' state; text() once it has answered."""

    def __init__(self, user: bool) -> None:
        self.user = user
        self.by_id: dict[int, tuple[AppRecord, str | None]] = {}

    def prepare(self, records: Sequence[AppRecord]) -> None:
        self.by_id = {record.pm_id: (record, template(record, self.user)) for record in records}

    def text(self, infos: Sequence[ProcessInfo]) -> str:
        items = []
        for info in infos:
            record, text = self.by_id.get(info.pm_id, (None, None))
            if record is not info.record:  # not prepared from this very record
                text = template(info.record, self.user)
            items.append(filled(text, info) if text is not None
                         else _dumps(with_runtime(record_entry(info.record, self.user), info)))
        return "[" + ", ".join(items) + "]\n"
