"""PM2's target grammar: which apps `all`, an id, a name or a namespace mean."""

from __future__ import annotations

from pmsd.errors import NotFoundError
from pmsd.model.record import AppRecord, RegistryData


def resolve_targets(data: RegistryData, target: str) -> list[AppRecord]:
    """PM2's target grammar: all, an id, a name, or a namespace."""
    if target == "all":
        return sorted(data.apps, key=lambda a: a.pm_id)
    if target.isdigit():
        record = data.by_id(int(target))
        if record is None:
            raise NotFoundError(f"no app with id {target}", "`pmsd ls` lists ids and names")
        return [record]
    instances = data.instances_of(target)
    if instances:
        return instances
    in_namespace = sorted((a for a in data.apps if a.spec.namespace == target), key=lambda a: a.pm_id)
    if in_namespace:
        return in_namespace
    raise NotFoundError(f"no app, id or namespace named {target!r}", "`pmsd ls` lists ids and names")
