"""Records about to get their units: the registry's intent log (issue 19).

A command that creates an app writes its records to the registry when its transaction ends, after systemd has
started the app's units: a command killed in between (`kill -9`, the OOM killer, a lost SSH session) left a unit
running that pmsd had no record of, which no `pmsd delete` reached and which blocked the name (found by
tests/e2e/test_faults.py). So the new records go to registry.pending.json first, just before their units are
created (intend). Whoever reads the registry next puts back the pending records whose units systemd has (the
command got that far), with a warning; the next transaction drops the others with their environment files
(it did not), and a transaction that ends normally removes the file.

Cheap when nothing is pending: one failed open() per read, and only new records are ever written (a restart of
1,000 existing apps writes nothing here).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable

from pmsd.errors import PmsdError
from pmsd.model.record import AppRecord, RegistryData
from pmsd.state.atomic import write_atomic

FORMAT_VERSION = 1
UnitsPresent = Callable[[list[str]], set[str]]  # the units of these names systemd has loaded


class PendingRecords:
    def __init__(self, state_dir: str, units_present: UnitsPresent | None) -> None:
        self.path = os.path.join(state_dir, "registry.pending.json")
        self._units_present = units_present
        self._known: set[tuple[int, str]] = set()  # the records the transaction read: not new
        self._intended: list[AppRecord] = []
        self._dropped: list[AppRecord] = []  # pending, without a unit: the command died before creating it

    def merge(self, data: RegistryData, warnings: list[str]) -> RegistryData:
        """`data` with the pending records whose units systemd has; the others are noted for settle(). When
        systemd does not answer, they are all kept (an app listed as stopped is better than a unit unlisted),
        unless their id went to another app meanwhile."""
        self._dropped = []
        pending = self._read()
        if not pending:  # nearly always: every registry read asks, and naming 1,000 apps' units costs ~3 ms
            return data
        known = {(record.pm_id, record.unit) for record in data.apps}
        candidates = [record for record in pending if (record.pm_id, record.unit) not in known]
        if not candidates:
            return data
        try:
            present = self._units_present([record.unit for record in candidates]) if self._units_present else None
        except PmsdError:
            present = None
        for record in candidates:
            taken = any(app.pm_id == record.pm_id for app in data.apps)
            if (record.unit not in present) if present is not None else taken:
                self._dropped.append(record)
                continue
            # A renamed app keeps its id: its record under the old name goes.
            data.apps = [app for app in data.apps if app.pm_id != record.pm_id] + [record]
            data.next_id = max(data.next_id, record.pm_id + 1)
            warnings.append(f"app {record.name!r} (id {record.pm_id}) was started by a pmsd command that did "
                            "not finish (killed?); it is listed again")
        return data

    def settle(self, data: RegistryData, env_file: Callable[[AppRecord], str]) -> None:
        """At the start of a transaction (the lock held, after merge): forget what the dropped records left."""
        self._known = {(record.pm_id, record.unit) for record in data.apps}
        self._intended = []
        for record in self._dropped:
            if record.pm_id not in {app.pm_id for app in data.apps}:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(env_file(record))

    def intend(self, records: list[AppRecord]) -> None:
        """Before units are created for `records`: those not in the registry yet are written down first."""
        new = [record for record in records
               if (record.pm_id, record.unit) not in self._known and record not in self._intended]
        if not new:
            return
        self._intended += new
        document = {"version": FORMAT_VERSION, "apps": [record.to_json() for record in self._intended]}
        # Not synced (durable=False): the file guards against a killed command, whose writes the kernel still
        # completes. A crash of the machine ends the boot, and the transient units it names with it; a
        # file then left empty reads as nothing pending. Two fsyncs fewer before every new app starts.
        write_atomic(self.path, json.dumps(document, ensure_ascii=False) + "\n", durable=False)

    def done(self) -> None:
        """The transaction's records are saved: nothing is pending any more."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _read(self) -> list[AppRecord]:
        """The pending records; none without a file, or with one that does not read (written atomically, it can
        only be damaged by hand: what it held is then lost, as before this log existed)."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                document = json.load(handle)
            return [AppRecord.from_json(app) for app in document["apps"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []
