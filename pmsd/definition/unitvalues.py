"""What systemd accepts in the values pmsd writes into units, and how each value is written so that systemd reads
back exactly what the user wrote. Nothing from a definition reaches a unit file or a transient property without
passing through here.

The rules are systemd 252's (SYSTEMD_FLOOR; Debian 12, RHEL 9), cited by source file:

- A unit file is read line by line (src/shared/conf-parser.c, config_parse()): "\\n", "\\r" and NUL end a line
  (read_line()), a line longer than LONG_LINE_MAX fails the whole unit (ENOBUFS), a line whose first non-blank
  character is "#" or ";" is a comment, and a line ending in an odd number of backslashes is joined with the
  next one. parse_line() strips blanks (" \\t\\n\\r") from both ends of the value and skips lines that are not
  UTF-8. A control character in a value would therefore end the line and start a directive of its own: that is
  how `"user": "alice\\nExecStartPre=+/bin/sh ..."` ran a command as root (issue 11). Plain values have no
  quoting, so control characters, blanks at the ends and a trailing backslash are refused, and "%" is written
  "%%" (specifier_printf() in src/shared/specifier.c expands "%x").
- Transient units (StartTransientUnit) take the values over D-Bus, but systemd also writes them to a unit file
  in /run/systemd/transient that a daemon-reload reads back with the same parser (unit_write_setting() in
  src/core/unit.c; dbus-execute.c escapes specifiers there, but not newlines in WorkingDirectory=,
  SyslogIdentifier= or StandardOutput=), so fork apps get the same rules.
- ExecStart= words (config_parse_exec() in src/core/load-fragment.c) are split by extract_first_word() with
  EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE: double quotes with C escapes carry any character but NUL (systemd.syntax(7),
  "QUOTING"). The program path must pass string_is_safe() (no control characters, quotes or backslashes) and
  path_is_valid(). At execution, "$NAME" and "${NAME}" in argv are replaced from the environment and "$$" is "$"
  (replace_env_argv() in src/basic/env-util.c): PM2 passes arguments as written, so every "$" is doubled, in
  the transient property and in the unit file alike.
- EnvironmentFile= is a glob (exec_context_load_environment() in src/core/execute.c calls safe_glob() without
  GLOB_NOESCAPE): "*", "?", "[" and "\\" in the path are escaped with a backslash.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

LONG_LINE_MAX = 1024 * 1024  # src/basic/def.h; config_parse() fails the unit on a longer line
PATH_MAX = 4096  # path_is_valid() in src/basic/path-util.c: a path is shorter, NUL included
NAME_MAX = 255  # ... and each of its components at most this long (path_find_first_component())
MAX_ARG_STRLEN = 32 * 4096  # Linux: execve() fails with E2BIG on a longer argument
# What execve() takes of argv and envp together: bprm_stack_limits() in fs/exec.c (prepare_arg_pages() in older
# kernels) allows min(_STK_LIM / 4 * 3, RLIMIT_STACK soft / 4), at least ARG_MAX, for every string (its bytes
# and its NUL: the program's path, then envp, then argv; copy_string_kernel(), copy_strings()) plus one pointer
# per argv and envp string (at least one for argv). More fails with E2BIG, which systemd reports as 203/EXEC.
STK_LIM = 8 * 1024 * 1024  # _STK_LIM (include/uapi/linux/resource.h); also init's soft RLIMIT_STACK
ARG_MAX = 32 * 4096  # include/uapi/linux/limits.h: what execve() always takes, however small the stack limit
POINTER_SIZE = 8  # sizeof(void *) of a 64-bit program; a 32-bit one needs less
# The variables systemd adds at each execution, on top of the app's Environment= and EnvironmentFile=
# (INVOCATION_ID, JOURNAL_STREAM, NOTIFY_SOCKET, MAINPID, MANAGERPID, SYSTEMD_EXEC_PID, LISTEN_*, PATH,
# HOME/USER/LOGNAME/SHELL, the manager's own environment: build_environment() in src/core/execute.c), and the
# interpreter line of a "#!" script (load_script() in fs/binfmt_script.c copies it in too): a few KiB.
EXEC_ENV_MARGIN = 16 * 1024
UID_INVALID = (0xFFFF, 0xFFFFFFFF)  # uid_is_valid() in src/basic/user-util.c
_BLANKS = " \t\n\r"  # WHITESPACE in src/basic/string-util.h: strstrip() removes these from a value's ends
_C_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNQUOTED_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_GLOB_SPECIAL = re.compile(r"([\\*?\[])")


def shown(value: str, limit: int = 60) -> str:
    """A value as an error message quotes it: repr(), cut short when long."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} characters)"


def describe_char(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def unicode_problem(value: str) -> str | None:
    """Why `value` is no Unicode text, or None: a lone surrogate (JSON's "\\ud800", or undecodable bytes of a
    path) cannot be UTF-8, which unit files and D-Bus require."""
    for char in value:
        if unicodedata.category(char) == "Cs":
            return f"{shown(value)} is not valid Unicode text (lone surrogate U+{ord(char):04X})"
    return None


def text_problem(value: str) -> str | None:
    """Why `value` cannot be written into a unit at all, or None: a control character (Unicode category Cc:
    C0, DEL and C1), or no Unicode text."""
    for char in value:
        if unicodedata.category(char) == "Cc":
            return (f"{shown(value)} contains a control character ({describe_char(char)}), which cannot be "
                    "written into a systemd unit")
    return unicode_problem(value)


def plain_value_problem(value: str) -> str | None:
    """Why `value` cannot be a plain unit-file value (Description=, SyslogIdentifier=, WorkingDirectory=, User=,
    StandardOutput=append:...), which has no quoting: see the module docstring."""
    problem = text_problem(value)
    if problem is not None:
        return problem
    if value != value.strip(_BLANKS):
        return f"{shown(value)} begins or ends with a space, which systemd strips from unit-file values"
    if value.endswith("\\"):
        return f"{shown(value)} ends with a backslash, which systemd reads as a line continuation in a unit file"
    return None


def path_problem(path: str) -> str | None:
    """Why the absolute, normalized `path` cannot be a plain path value (WorkingDirectory=, StandardOutput=append:):
    path_simplify_and_warn() in systemd 252 wants it absolute, normalized and valid (path_is_valid())."""
    problem = plain_value_problem(path)
    if problem is not None:
        return problem
    if not path.startswith("/") or path.startswith("//") or path != os.path.normpath(path):
        return f"{shown(path)} is not an absolute, normalized path"
    encoded = path.encode()
    if len(encoded) >= PATH_MAX:
        return f"{shown(path)} is {len(encoded)} bytes long; systemd takes paths of at most {PATH_MAX - 1}"
    if any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        return f"{shown(path)} has a component longer than {NAME_MAX} bytes"
    return None


def user_group_problem(name: str) -> str | None:
    """Why `name` is not a User=/Group= systemd accepts: valid_user_group_name() with VALID_USER_RELAX and
    VALID_USER_ALLOW_NUMERIC (src/basic/user-util.c, used by config_parse_user_group_compat() and D-Bus'
    bus_set_transient_user_relaxed()), plus what a plain unit-file value cannot hold."""
    if not name:
        return "a user or group name cannot be empty"
    if name.isascii() and name.isdigit():  # parse_uid(): no sign, no leading zero, no blanks, 32 bits
        if (name != "0" and name.startswith("0")) or len(name) > 10 or int(name) > 0xFFFFFFFF \
                or int(name) in UID_INVALID:
            return (f"{shown(name)} is not a valid numeric uid/gid (0 to 4294967294, not 65535, no leading zeros)")
        return None
    if name.isdigit():  # "²", "٣": digits to Python's int(), a name to systemd; no user is called that
        return f"{name!r} is not a numeric uid/gid (digits 0-9) nor a user or group name"
    problem = plain_value_problem(name)
    if problem is not None:
        return problem
    if ":" in name or "/" in name:
        return f"{shown(name)} contains ':' or '/', which systemd refuses in user and group names"
    if name.startswith("-") and all(char in "0123456789" for char in name[1:]):  # "-" alone too (in_charset)
        return f"{name!r} is a negative number, which systemd refuses as a user or group"
    if name in (".", ".."):
        return f"{name!r} is not a user or group name systemd accepts"
    return None


def exec_path_problem(path: str) -> str | None:
    """Why systemd would refuse `path` as the program of ExecStart=: config_parse_exec() wants string_is_safe()
    (no control characters, quotes or backslashes), no trailing "/" and path_is_valid(); D-Bus wants it absolute."""
    problem = text_problem(path)
    if problem is not None:
        return problem
    if any(char in path for char in "\"'\\"):
        return (f"{shown(path)} contains a quote or a backslash, which systemd refuses in the path of the program "
                "it executes")
    if not path.startswith("/") or path.endswith("/"):
        return f"{shown(path)} is not an absolute path to a program"
    encoded = path.encode()
    if len(encoded) >= PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        return f"{shown(path)} is longer than systemd takes for a program path ({PATH_MAX - 1} bytes)"
    return None


def argument_problem(word: str) -> str | None:
    """Why `word` cannot be an argument: ExecStart= quoting carries every character but NUL (which no argv
    can hold), and the kernel refuses arguments longer than MAX_ARG_STRLEN."""
    if "\0" in word:
        return f"{shown(word)} contains a NUL character, which no program argument can hold"
    if unicode_problem(word) is not None:
        return unicode_problem(word)
    if len(word.encode()) > MAX_ARG_STRLEN:
        return (f"an argument of {len(word.encode())} bytes is longer than Linux passes to a program "
                f"({MAX_ARG_STRLEN} bytes); pass it in a file or an environment variable")
    return None


def exec_limit(stack_rlimit: int = STK_LIM) -> int:
    """How many bytes of strings and pointers execve() takes for a program whose soft RLIMIT_STACK is
    `stack_rlimit` (bprm_stack_limits() in fs/exec.c). An app runs under its manager's limits, not the CLI's, so
    the CLI's own sysconf("SC_ARG_MAX") says nothing about it: systemd-system.conf(5) leaves DefaultLimitSTACK=
    unset, "inherited from the kernel" (_STK_LIM, 8 MiB: INIT_RLIMITS in include/asm-generic/resource.h) by
    PID 1, user@.service's manager and every service. pmsd has no LimitSTACK= option: every app gets STK_LIM."""
    quarter = stack_rlimit // 4 if stack_rlimit >= 0 else STK_LIM  # RLIM_INFINITY is -1 to Python
    return max(min(STK_LIM // 4 * 3, quarter), ARG_MAX)


def _string_size(text: str) -> int:
    # surrogatepass: an undecodable byte of the caller's environment (a lone surrogate to Python) counts 3 bytes,
    # at least its real size, and never raises.
    return len(text.encode("utf-8", "surrogatepass")) + 1  # and its NUL


def exec_size(argv: Sequence[str], env: Mapping[str, str], program: str | None = None) -> int:
    """What execve() of `program` (argv[0] when None) with `argv` and `env` counts against exec_limit()."""
    path = program if program is not None else (argv[0] if argv else "")
    strings = _string_size(path) + sum(_string_size(word) for word in argv)
    strings += sum(_string_size(f"{name}={value}") for name, value in env.items())
    return strings + (max(len(argv), 1) + len(env)) * POINTER_SIZE


def exec_size_problem(argv: Sequence[str], env: Mapping[str, str], program: str | None = None,
                      stack_rlimit: int = STK_LIM) -> str | None:
    """Why the kernel would refuse to execute `argv` with `env` (E2BIG), or None: their size, against what
    execve() takes less EXEC_ENV_MARGIN, the room left for the variables systemd adds itself. The problem
    says where the bytes are: the arguments, and the largest variables."""
    size = exec_size(argv, env, program)
    limit = exec_limit(stack_rlimit)
    room = limit - EXEC_ENV_MARGIN
    if size <= room:
        return None
    sizes = {name: _string_size(f"{name}={value}") - 1 for name, value in env.items()}
    largest = sorted(sizes, key=lambda name: (-sizes[name], name))[:3]
    named = ", ".join(f"{shown(name, 40)} ({sizes[name]:,} bytes)" for name in largest)
    arguments = sum(_string_size(word) - 1 for word in argv)
    stack = f"{stack_rlimit / 1024 / 1024:g} MiB" + (" (systemd's default)" if stack_rlimit == STK_LIM else "")
    return (f"its arguments and environment come to {size:,} bytes ({len(argv)} arguments of {arguments:,} "
            f"bytes, {len(env)} variables{'; the largest: ' + named if named else ''}), more than the {room:,} "
            f"bytes pmsd allows: Linux executes a program with at most {limit:,} when its stack limit is {stack}, "
            f"and the variables systemd adds take up to {EXEC_ENV_MARGIN:,} more; beyond that systemd fails to "
            "run it (E2BIG, status 203/EXEC)")


# ------------------------------------------------------------------------------------------------ writing


def literal(value: object) -> str:
    """Unit-file text for a plain value: "%" doubled, so that systemd's specifiers leave it as it is."""
    return str(value).replace("%", "%%")


def exec_argv(argv: Iterable[str]) -> list[str]:
    """argv as systemd must be given it (D-Bus or unit file) to run it as written: "$" doubled."""
    return [word.replace("$", "$$") for word in argv]


def exec_word(word: str) -> str:
    """One ExecStart= word (already through exec_argv): unquoted when plainly safe, else double-quoted with C
    escapes for backslash, quote and control characters; "%" doubled."""
    if word and _UNQUOTED_WORD.fullmatch(word):
        return word.replace("%", "%%")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: _C_ESCAPES.get(m.group(0), f"\\x{ord(m.group(0)):02x}"), escaped)
    return f'"{escaped}"'


def exec_line(path: str, argv: list[str]) -> str:
    """ExecStart= text for the program `path` and `argv` (through exec_argv). When argv[0] is not the path (a "$"
    in it was doubled), the "@" form gives argv[0] separately: the path itself is never expanded."""
    if argv and argv[0] == path:
        return " ".join(exec_word(word) for word in argv)
    return "@" + " ".join(exec_word(word) for word in [path, *argv])


def fnmatch_literal(text: str) -> str:
    """An fnmatch() pattern matching `text` itself (ListUnitsByPatterns, Python's fnmatch): "*?[\\" bracketed."""
    return "".join(f"[{char}]" if char in "*?[\\" else char for char in text)


def glob_escape(path: str) -> str:
    """EnvironmentFile= text that the glob systemd expands matches only `path` itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", path)


def env_file_problem(path: str) -> str | None:
    """Why pmsd's env file `path` (under its state directory) cannot be named in EnvironmentFile=."""
    problem = plain_value_problem(path)
    if problem is None and not os.path.isabs(path):
        problem = f"{shown(path)} is not an absolute path"
    return problem


def line_problem(line: str) -> str | None:
    """Why a rendered unit-file line would not be read back as one line (the last check before any unit text
    is used; every value has been checked by then)."""
    if re.search(r"[\n\r\0]", line):
        return f"it would break the unit file's line {shown(line)}"
    if len(line.encode()) >= LONG_LINE_MAX:
        return (f"its unit-file line would be {len(line.encode())} bytes long; systemd reads lines of less than "
                f"{LONG_LINE_MAX} bytes (LONG_LINE_MAX)")
    return None
