"""PM2's `--ext js,json`: watch only files with these extensions.

PM2 7 (lib/API.js, with lib/API/Modules/flagExt.js) does it at start: it lists every file under the CLI's
current directory whose name ends in none of the extensions, skipping directories whose path contains
node_modules, and that list becomes the app's ignore_watch, replacing any other. pmsd does the same, so that
`--watch --ext js` behaves as a PM2 user knows it, its limit included: a file created later is watched
whatever its extension.
"""

from __future__ import annotations

import os

# A start from / or a home directory would list everything below it; PM2 would too, slowly. pmsd stops here.
MAX_LISTED = 50_000


def ignore_all_but(root: str, extensions: str) -> list[str]:
    """The files under `root` to ignore so that only the given extensions ("js,json") are watched."""
    suffixes = tuple("." + part.strip().lstrip(".") for part in extensions.split(",") if part.strip().lstrip("."))
    if not suffixes:
        raise ValueError(f"expected file extensions such as js,json; got {extensions!r}")
    ignored: list[str] = []
    # os.walk does not follow symlinks to directories: a link loop cannot trap it.
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories
                                   if "node_modules" not in os.path.join(directory, name))
        ignored.extend(os.path.join(directory, name) for name in sorted(files) if not name.endswith(suffixes))
        if len(ignored) > MAX_LISTED:
            raise ValueError(f"more than {MAX_LISTED} files under {root} have other extensions; run pmsd start "
                             "from the app's own directory, or give ignore_watch patterns instead")
    return ignored
