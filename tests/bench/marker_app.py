"""The app every manager runs in the benchmark (copied once per app under a unique file name).

Its first action is to record "<pid> <time.time_ns()>" in markers/<own file stem>, next to its own copy,
so the bench learns both *that* the app's code runs and *when* (the app's own clock reading, which avoids
measuring the bench's polling interval). The marker path derives from __file__ alone, so the app needs no
argument or environment variable, which every manager passes differently. Then it idles.
"""

import os
import time

_here = os.path.dirname(os.path.abspath(__file__))
_stem = os.path.splitext(os.path.basename(__file__))[0]
_marker = os.path.join(_here, "markers", _stem)
with open(_marker + ".tmp", "w") as _f:
    _f.write(f"{os.getpid()} {time.time_ns()}")
# Atomic publish: the bench must never read a half-written marker.
os.replace(_marker + ".tmp", _marker)

time.sleep(1e6)
