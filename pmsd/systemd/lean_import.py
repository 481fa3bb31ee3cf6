"""Import pystemd's low-level binding without its package __init__.

`import pystemd.dbuslib` first runs pystemd/__init__.py, which imports pystemd.base and with it lxml: ~25 ms
on every CLI call and ~3 MiB in god, for XML introspection pmsd never uses. Registering the package as a
bare namespace (its real search path, no __init__ run) lets the compiled submodules load on their own.
If pystemd is already fully imported (a user's script), nothing changes.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def install() -> None:
    if "pystemd" in sys.modules:
        return
    spec = importlib.util.find_spec("pystemd")
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed: the import that follows reports it
    package = types.ModuleType("pystemd")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["pystemd"] = package
