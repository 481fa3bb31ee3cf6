"""`pmsd sendSignal`: a signal to the main process of apps, as PM2 signals the process it forked.

systemd delivers it (KillUnit, whom "main"): pmsd never needs the pid, and a unit without a running main
process is reported instead of signalling a pid that may since belong to another process.
"""

from __future__ import annotations

import signal as signals
from collections.abc import Sequence
from dataclasses import dataclass

from pmsd.api.targets import resolve_targets
from pmsd.context import Context
from pmsd.errors import PmsdError, UsageError
from pmsd.model.record import AppRecord


@dataclass(frozen=True)
class Signalled:
    """One app a signal was sent to (or not: `problem` says why)."""

    pm_id: int
    name: str
    problem: str | None = None


def parse_signal(text: str) -> int:
    """SIGUSR2, USR2 (any case) or a number, as `kill -s` takes them; PM2 takes the names Node knows."""
    word = text.strip()
    if word.isascii() and word.isdigit():  # not "²" (str.isdigit(), not int()); 5000 digits: not for int()
        number = int(word) if len(word) <= 18 else 0
        valid = {int(s) for s in signals.valid_signals()}
        if number not in valid or number == 0:
            raise UsageError(f"signal {word[:40]} is not a signal of this system",
                             "give a name such as SIGUSR2 (or USR2), or a number from `kill -l`")
        return number
    name = word.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    found = getattr(signals.Signals, name, None) if name.isidentifier() else None
    if found is None:
        raise UsageError(f"unknown signal {text[:40]!r}", "give a name such as SIGUSR2 (or USR2), or a number "
                         "from `kill -l`")
    return int(found)


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return str(number)


def send_signal(ctx: Context, signal: str | int, target: str | Sequence[str]) -> list[Signalled]:
    """Send `signal` to the main process of every app the target(s) name (an id, a name, a namespace, all)."""
    number = signal if isinstance(signal, int) else parse_signal(signal)
    data = ctx.registry.read()
    records: list[AppRecord] = []
    for word in [target] if isinstance(target, str) else list(target):
        records += [record for record in resolve_targets(data, word) if record not in records]
    done = []
    for record in records:
        state = ctx.manager.service_state(record.unit)
        if state is None or not state.main_pid:
            done.append(Signalled(record.pm_id, record.name, "not running"))
            continue
        try:
            ctx.manager.kill_unit(record.unit, number, "main")
        except PmsdError as error:
            done.append(Signalled(record.pm_id, record.name, error.message))
            continue
        done.append(Signalled(record.pm_id, record.name))
    return done
