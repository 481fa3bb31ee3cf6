"""`pmsd doctor`'s findings as text (one line per check, then why and the fix, indented) and as JSON."""

from __future__ import annotations

import json

from pmsd.model.doctor import Finding, Level, worst

_COLOURS = {Level.OK: "32", Level.WARN: "33", Level.FAIL: "31"}  # green, yellow, red (ECMA-48 SGR)
_LABEL_WIDTH = len("FAIL")
_INDENT = " " * (_LABEL_WIDTH + 2)


def _label(level: Level, colour: bool) -> str:
    text = level.value.upper().ljust(_LABEL_WIDTH)
    return f"\x1b[{_COLOURS[level]}m{text}\x1b[0m" if colour else text


def _block(title: str, text: str) -> list[str]:
    """`why: ...` or `fix: ...`; the lines after the first (a file's content) indented under it."""
    first, *rest = text.splitlines() or [""]
    pad = _INDENT + " " * (len(title) + 2)
    return [f"{_INDENT}{title}: {first}", *(f"{pad}{line}" for line in rest)]


def render_text(findings: list[Finding], scope: str, colour: bool) -> str:
    width = max((len(finding.check) for finding in findings), default=0)
    lines = [f"pmsd doctor: the systemd {scope} manager and this host"]
    for finding in findings:
        lines.append(f"{_label(finding.level, colour)}  {finding.check.ljust(width)}  {finding.found}")
        if finding.why:
            lines += _block("why", finding.why)
        if finding.fix:
            lines += _block("fix", finding.fix)
    failures = sum(finding.level == Level.FAIL for finding in findings)
    warnings = sum(finding.level == Level.WARN for finding in findings)
    lines.append(f"{failures} failure{'s' * (failures != 1)}, {warnings} warning{'s' * (warnings != 1)}"
                 f" in {len(findings)} checks")
    return "\n".join(lines) + "\n"


def render_json(findings: list[Finding], scope: str) -> str:
    return json.dumps({"scope": scope, "status": worst(findings).value,
                       "findings": [finding.to_json() for finding in findings]}, indent=2) + "\n"
