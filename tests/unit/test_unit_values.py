"""Nothing a user writes reaches a systemd unit unchecked (issue 11): every string setting, fed hostile values, is
either refused while the definition is built, or reaches every unit-file line and transient property in a form
that systemd 252 reads back as exactly the value.

"Reads back" is decided by a model of systemd's parsers written here from its source, independently of pmsd's
code: the unit-file reader (src/shared/conf-parser.c), specifiers (src/shared/specifier.c), ExecStart= words
(config_parse_exec() in src/core/load-fragment.c over extract_first_word() and cunescape_one()), the "$"
expansion at execution (replace_env_argv() in src/basic/env-util.c), paths (path_simplify_and_warn()), user
names (valid_user_group_name()) and the EnvironmentFile= glob. tests/e2e/test_unit_values.py checks the model
against a real systemd. No systemd here.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmsd.definition.build import build_spec
from pmsd.definition.settings import SETTINGS, SYSTEMD_FLOOR
from pmsd.definition.unitfiles import render_cluster_units, render_log_dropin
from pmsd.definition.units import assignments, render_unit_file, transient_properties
from pmsd.errors import UsageError
from pmsd.model.record import AppRecord
from pmsd.model.spec import AppSpec, Source, UnitInputs
from pmsd.state.registry import Registry
from pmsd.systemd.names import listener_unit, socket_unit, template_unit
from tests.unit.helpers import SYSTEM_PATH

LONG_LINE_MAX = 1024 * 1024
PATH_MAX = 4096
WHITESPACE = b" \t\n\r"


class Refused(Exception):
    """systemd would refuse this, or read back something else than what was meant."""


# ================================================================================ the model: unit files


@dataclass(frozen=True)
class Entry:
    section: str
    key: str
    value: str


_EOL = re.compile(rb"\n\r\0|\r\n\0|\n\0|\r\0|\r\n|\n\r|[\n\r\0]")  # read_line(): each of these ends one line


def read_unit(text: str) -> list[Entry]:
    """Every assignment of a unit file, as config_parse() reads it: comment lines skipped (also inside a
    continuation), a line ending in an odd run of backslashes joined to the next with a space, blanks stripped
    around key and value. Anything pmsd should never write (a line too long, an assignment outside a section,
    a line without "=", text that is not UTF-8) is Refused."""
    entries: list[Entry] = []
    state: dict[str, Any] = {"section": None}
    continuation: bytes | None = None
    for raw in _EOL.split(text.encode("utf-8")):
        if len(raw) > LONG_LINE_MAX:
            raise Refused("line too long (ENOBUFS)")
        if raw.lstrip(WHITESPACE)[:1] in (b"#", b";"):
            continue
        line = raw if continuation is None else continuation + raw
        if (len(line) - len(line.rstrip(b"\\"))) % 2 == 1:
            continuation = line[:-1] + b" "
            continue
        continuation = None
        _parse_line(line, state, entries)
    if continuation is not None:
        _parse_line(continuation, state, entries)
    return entries


def _parse_line(line: bytes, state: dict[str, Any], entries: list[Entry]) -> None:
    line = line.strip(WHITESPACE)
    if not line:
        return
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("line is not UTF-8 (skipped with a warning)") from None
    if text.startswith("["):
        if not text.endswith("]"):
            raise Refused(f"invalid section header {text!r}")
        state["section"] = text[1:-1]
        return
    if state["section"] is None:
        raise Refused(f"assignment outside of a section: {text!r}")
    key, equals, value = text.partition("=")
    if not equals or not key.strip(" \t\n\r"):
        raise Refused(f"not an assignment: {text!r}")
    entries.append(Entry(state["section"], key.strip(" \t\n\r"), value.strip(" \t\n\r")))


def printf(text: str, instance: str | None = None) -> str:
    """specifier_printf(): "%%" is "%", "%<letter or digit>" a specifier (Refused: it would be replaced; only
    "%i" is known, the instance of a template), "%" before anything else stays."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "%":
            out.append(char)
            index += 1
            continue
        following = text[index + 1: index + 2]
        if following in ("", "%"):  # a stray "%" at the end stays
            out.append("%")
        elif following == "i" and instance is not None:
            out.append(instance)
        elif following.isascii() and following.isalnum():
            raise Refused(f"specifier %{following} would be replaced")
        else:
            out.append("%" + following)
        index += 2
    return "".join(out)


# ================================================================================ the model: ExecStart=

_SIMPLE_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11,
                   ord("\\"): 92, ord('"'): 34, ord("'"): 39, ord("s"): 32}


def _digits(data: bytes, start: int, count: int, base: int) -> int | None:
    chunk = data[start: start + count]
    allowed = b"0123456789abcdefABCDEF" if base == 16 else b"01234567"
    if len(chunk) != count or any(byte not in allowed for byte in chunk):
        return None
    return int(chunk, base)


def cunescape_one(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The escape at data[pos] (after a backslash): its bytes and length, or None when invalid."""
    char = data[pos] if pos < len(data) else 0
    if char in _SIMPLE_ESCAPES:
        return bytes([_SIMPLE_ESCAPES[char]]), 1
    if char == ord("x"):
        value = _digits(data, pos + 1, 2, 16)
        return None if not value else (bytes([value]), 3)  # raw byte ("eight bit"); NUL refused
    if char in (ord("u"), ord("U")):
        width = 4 if char == ord("u") else 8
        value = _digits(data, pos + 1, width, 16)
        if not value or (width == 8 and (value > 0x10FFFF or 0xD800 <= value <= 0xDFFF)):
            return None
        return chr(value).encode("utf-8", "surrogatepass"), width + 1
    if ord("0") <= char <= ord("7"):
        value = _digits(data, pos, 3, 8)
        return None if not value or value > 255 else (bytes([value]), 3)
    return None


class _Invalid(Exception):
    """extract_first_word()'s -EINVAL."""


def extract_first_word(data: bytes, pos: int, relax: bool = False) -> tuple[bytes | None, int]:
    """extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE [|EXTRACT_UNESCAPE_RELAX]): (word, position after
    it and its separators), or (None, end)."""
    end = len(data)
    while pos < end and data[pos] in WHITESPACE:
        pos += 1
    if pos >= end:
        return None, end
    word = bytearray()
    quote = 0
    backslash = False
    while True:
        char = data[pos] if pos < end else 0
        if backslash:
            if char == 0:
                if relax and quote == 0:
                    return bytes(word) + b"\\", end
                raise _Invalid("trailing backslash")
            escaped = cunescape_one(data, pos)
            if escaped is not None:
                word += escaped[0]
                pos += escaped[1]
            elif relax:
                word += bytes([92, char])
                pos += 1
            else:
                raise _Invalid("unknown escape")
            backslash = False
        elif quote:
            while True:
                char = data[pos] if pos < end else 0
                if char == 0:
                    raise _Invalid("unbalanced quotes")
                pos += 1
                if char == quote:
                    quote = 0
                    break
                if char == 92:
                    backslash = True
                    break
                word.append(char)
        else:
            while True:
                char = data[pos] if pos < end else 0
                if char == 0:
                    return bytes(word), end
                if char in (0x22, 0x27):
                    quote = char
                    pos += 1
                    break
                if char == 92:
                    backslash = True
                    pos += 1
                    break
                if char in WHITESPACE:
                    while pos < end and data[pos] in WHITESPACE:
                        pos += 1
                    return bytes(word), (pos if pos < end else end)
                word.append(char)
                pos += 1


def _extract_and_warn(data: bytes, pos: int) -> tuple[bytes | None, int]:
    """extract_first_word_and_warn(): unknown escapes are retried as literal (a warning), unbalanced quotes fail."""
    try:
        return extract_first_word(data, pos)
    except _Invalid:
        try:
            return extract_first_word(data, pos, relax=True)
        except _Invalid as error:
            raise Refused(f"ExecStart= is invalid: {error}") from None


def _text(word: bytes) -> str:
    try:
        return word.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"{word!r} is not UTF-8") from None


def _string_is_safe(path: str) -> bool:
    return not any(ord(c) < 32 or ord(c) == 127 or c in "\"'\\" for c in path)


def path_simplify(path: str) -> str:
    """path_simplify(): duplicate slashes, "." components and trailing slashes removed ("..": kept)."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts) or "/"


def path_is_valid(path: str) -> bool:
    encoded = path.encode()
    return 0 < len(encoded) < PATH_MAX and all(len(part) <= 255 for part in encoded.split(b"/"))


@dataclass(frozen=True)
class Command:
    path: str
    argv: list[str]
    prefixes: frozenset[str]

    def executed_argv(self) -> list[str]:
        """argv as the program gets it: replace_env_argv() unless ":" (Refused where a variable would be used)."""
        return self.argv if ":" in self.prefixes else [replace_env(word) for word in self.argv]


def parse_exec(value: str, instance: str | None = None) -> Command:
    """config_parse_exec() for one command (a second one, after ";", is Refused: pmsd never writes one)."""
    data = value.encode("utf-8")
    first, pos = _extract_and_warn(data, 0)
    if first is None or first == b";":
        raise Refused("no command")
    prefixes, index = _prefixes(first)
    path = printf(_text(first[index:]), instance)
    if not path or not _string_is_safe(path) or path.endswith("/"):
        raise Refused(f"bad executable path {path!r}")
    if not (path_is_valid(path) if path.startswith("/") else ("/" not in path and len(path.encode()) <= 255)):
        raise Refused(f"neither a valid executable name nor an absolute path: {path!r}")
    argv = [] if "@" in prefixes else [path]
    while pos < len(data):
        if data[pos:pos + 1] == b";" and (pos + 1 == len(data) or data[pos + 1] in WHITESPACE):
            raise Refused("a second command follows")
        if data[pos:pos + 2] == b"\\;" and (pos + 2 == len(data) or data[pos + 2] in WHITESPACE):
            argv.append(";")
            pos += 2
            while pos < len(data) and data[pos] in WHITESPACE:
                pos += 1
            continue
        word, pos = _extract_and_warn(data, pos)
        if word is None:
            break
        argv.append(printf(_text(word), instance))
    if not argv:
        raise Refused("empty argv")
    return Command(path_simplify(path), argv, frozenset(prefixes))


def _prefixes(word: bytes) -> tuple[set[str], int]:
    prefixes: set[str] = set()
    index = 0
    while index < len(word):
        char = chr(word[index])
        if (char in "-@:" and char not in prefixes) or (char in "+!" and not prefixes & {"+", "!", "!!"}):
            prefixes.add(char)
        elif char == "!" and "!" in prefixes and not prefixes & {"+", "!!"}:
            prefixes.discard("!")
            prefixes.add("!!")
        else:
            break
        index += 1
    return prefixes, index


def replace_env(word: str) -> str:
    """A word as replace_env_argv() leaves it with the variables unknown: "$$" is "$"; "$NAME" as a whole word
    and "${NAME}" would be replaced (Refused)."""
    if word.startswith("$") and word[1:2] not in ("{", "$"):
        raise Refused(f"{word!r} would be replaced by a variable")
    out: list[str] = []
    index = 0
    while index < len(word):
        if word[index] == "$" and word[index + 1: index + 2] == "$":
            out.append("$")
            index += 2
        elif word[index] == "$" and word[index + 1: index + 2] == "{":
            raise Refused(f"{word!r} would be replaced by a variable")
        else:
            out.append(word[index])
            index += 1
    return "".join(out)


# ================================================================================ the model: other values


def plain_path(value: str, instance: str | None = None) -> str:
    """WorkingDirectory=, StandardOutput=append:PATH: path_simplify_and_warn(PATH_CHECK_ABSOLUTE); a path systemd
    would simplify into another spelling counts as Refused (it would not read back as written)."""
    if value.startswith("-") or value == "~":
        raise Refused(f"{value!r} has a prefix with a meaning")
    path = printf(value, instance)
    if not path.startswith("/") or path_simplify(path) != path or not path_is_valid(path):
        raise Refused(f"not an absolute, simplified, valid path: {path!r}")
    if "/../" in path + "/":
        raise Refused(f"not normalized: {path!r}")
    return path


def append_path(value: str) -> str:
    if not value.startswith("append:"):
        raise Refused(f"not append:PATH: {value!r}")
    return plain_path(value[len("append:"):])


def glob_literal(pattern: str) -> str:
    """The one path a glob (safe_glob(), backslash escapes on) matches, or Refused if it could match others."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            if index + 1 == len(pattern):
                raise Refused("trailing backslash in a glob")
            out.append(pattern[index + 1])
            index += 2
            continue
        if char in "*?[":
            raise Refused(f"glob metacharacter {char!r} in {pattern!r}")
        out.append(char)
        index += 1
    return "".join(out)


def env_file(value: str, instance: str | None = None) -> str:
    """config_parse_unit_env_file(): specifiers, then the glob (exec_context_load_environment())."""
    if value.startswith("-"):
        raise Refused("'-' prefix: a missing file would be ignored")
    path = printf(value, instance)
    if not path.startswith("/") or path_simplify(path) != path:
        raise Refused(f"not an absolute, simplified path: {path!r}")
    return glob_literal(path)


def _parse_uid(name: str) -> bool:
    if not name or not all(c in "0123456789" for c in name) or (len(name) > 1 and name.startswith("0")):
        return False
    return int(name) <= 0xFFFFFFFF and int(name) not in (0xFFFF, 0xFFFFFFFF)


def valid_user_group_name(name: str) -> bool:
    """valid_user_group_name(VALID_USER_RELAX|VALID_USER_ALLOW_NUMERIC), src/basic/user-util.c."""
    if not name:
        return False
    if _parse_uid(name):
        return True
    digits = "0123456789"
    return not (name.startswith(" ") or name.endswith(" ") or any(ord(c) < 32 or ord(c) == 127 for c in name)
                or ":" in name or "/" in name or all(c in digits for c in name)
                or (name[0] == "-" and all(c in digits for c in name[1:])) or name in (".", ".."))


def user_group(value: str) -> str:
    name = printf(value)
    if not valid_user_group_name(name):
        raise Refused(f"invalid user/group name {name!r}")
    return name


# ================================================================================ the model, tested


@pytest.mark.parametrize(("value", "command"), [
    ("/bin/echo a  b", ("/bin/echo", ["/bin/echo", "a", "b"])),
    ('/bin/echo "a b" \'c d\' e\\ f', ("/bin/echo", ["/bin/echo", "a b", "c d", "e\\ f"])),  # "\ ": unknown
    ('/bin/echo "\\x41\\n\\t\\\\\\"" \\s', ("/bin/echo", ["/bin/echo", "A\n\t\\\"", " "])),
    ('/bin/echo a"b c"d', ("/bin/echo", ["/bin/echo", "ab cd"])),
    ("/bin/echo \\d", ("/bin/echo", ["/bin/echo", "\\d"])),  # unknown escape: kept, with a warning
    ("/bin/echo \\; x", ("/bin/echo", ["/bin/echo", ";", "x"])),
    ('/bin/echo "" 100%%', ("/bin/echo", ["/bin/echo", "", "100%"])),
    ("@/bin/echo zero one", ("/bin/echo", ["zero", "one"])),
    ("-/bin//echo", ("/bin/echo", ["/bin//echo"])),
    ("/bin/echo \\x00", ("/bin/echo", ["/bin/echo", "\\x00"])),  # no NUL escape: kept as written
])
def test_model_parses_exec_start_as_systemd_syntax_says(value: str, command: tuple[str, list[str]]) -> None:
    parsed = parse_exec(value)
    assert (parsed.path, parsed.argv) == command


@pytest.mark.parametrize("value", ['/bin/echo "open', "/bin/echo a ; /bin/true", "/bin/echo %h", "a/b",
                                   '"/bin/e\\"cho"', "/bin/echo/"])
def test_model_refuses_what_systemd_refuses_or_changes(value: str) -> None:
    with pytest.raises(Refused):
        parse_exec(value)


def test_model_reads_continuations_comments_and_sections() -> None:
    text = "# c\n[Unit]\nDescription=a \\\n# skipped\n  b  \n;x\n[Service]\nUser=u\\\\\nGroup=g\r\nX = y\0Z=1\n"
    assert read_unit(text) == [Entry("Unit", "Description", "a    b"), Entry("Service", "User", "u\\\\"),
                               Entry("Service", "Group", "g"), Entry("Service", "X", "y"), Entry("Service", "Z", "1")]


def test_model_expands_dollars_and_specifiers_like_systemd() -> None:
    assert [replace_env(w) for w in ("$$HOME", "a$$$$b", "a$b", "$$")] == ["$HOME", "a$$b", "a$b", "$"]
    for word in ("$HOME", "$", "a${X}"):
        with pytest.raises(Refused):
            replace_env(word)
    assert printf("100%% %i %é %", instance="7") == "100% 7 %é %"
    assert env_file("/s/\\[x\\]\\*/a\\\\x20b@%i.env", instance="1") == "/s/[x]*/a\\x20b@1.env"
    assert valid_user_group_name("4294967294") and not valid_user_group_name("65535")
    assert not valid_user_group_name("-") and not valid_user_group_name("a:b") and valid_user_group_name("a b")


# ================================================================================ hostile values

PIECES = [
    "\n", "\r", "\r\n", "\0", "\t", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\ufeff", "\ud800",
    '"', "'", "\\", "\\\\", "\\n", "\\x41", "%", "%h", "%i", "%n", "%%", "%%i", "$", "$HOME", "${HOME}", "$$",
    "*", "?", "[", "]", "[a]", "-", "+", "@", "!", "!!", ":", "~", ";", " ;", "\\;", " ", "  ", "#", "=", "/", "//",
    ".", "..", "é", "日本", "🚀", '\nExecStartPre=+/bin/sh -c "id > /tmp/owned"', "\n[Service]\nUser=root",
    "\\\n", "\nListenStream=9", "a", "x1",
]
HOSTILE = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=7).map("".join),
    st.builds(lambda unit, count: unit * count, st.sampled_from(["a", "%", "$", "\\", " ", "é", "ab/"]),
              st.integers(200, 5000)),
)

# Valid but unusual spellings, so that settings whose hostile values are all refused are also accepted.
UNUSUAL: dict[str, list[str]] = {
    "port": ["80", " 80 ", "0080", "127.0.0.1:3000", "[::1]:3000", "[::ffff:1.2.3.4]:9", "[0::0]:65535"],
    "cron_restart": ["@daily", " */5 * * * * ", "0 0 1 * MON", "0 0 12 * * 1-5"],
    "log_type": ["json", "raw"], "exec_mode": ["cluster", "fork_mode"], "instance_var": ["X_1", "_"],
    "increment_var": ["PORT"], "user": ["0", "4294967294", "a b", "+1", "日本", "100%"],
    # A leading "~" is the home directory (hypothesis found "~" once; kept as a regression case).
    "cwd": ["~", "~/x", "x/~"], "out_file": ["~/out.log"],
}

# Settings whose value is text (or a list of texts): every one is fed HOSTILE values below.
STRING_KEYS = ("name", "script", "args", "interpreter", "interpreter_args", "cwd", "namespace", "user", "group",
               "out_file", "error_file", "log_file", "log_date_format", "log_type", "cron_restart", "watch",
               "ignore_watch", "exec_mode", "port", "instance_var", "increment_var", "env", "filter_env")
EXAMPLES = int(os.environ.get("PMSD_HYPOTHESIS_EXAMPLES", "40"))


def test_every_string_setting_is_covered() -> None:
    types = {field.name: str(field.type) for field in fields(AppSpec)}
    textual = {s.key for s in SETTINGS if s.key in types and re.search(r"\bstr\b", types[s.key])}
    assert textual <= set(STRING_KEYS), textual - set(STRING_KEYS)
    assert set(STRING_KEYS) <= {s.key for s in SETTINGS}


@dataclass
class Sandbox:
    """A directory for one example: files the hostile value names are created inside it, never outside."""

    base: str

    def inside(self, value: str) -> str | None:
        target = os.path.normpath(os.path.join(self.base, value))
        return target if target.startswith(self.base + os.sep) else None

    def make(self, value: str, kind: str) -> str | None:
        """Create the file ("exec") or directory ("dir") or the parent ("parent") `value` names; its path."""
        target = self.inside(value)
        if target is None or len(target.encode(errors="surrogatepass")) >= PATH_MAX:  # the kernel's limit
            return None
        try:
            if kind == "dir":
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if kind == "exec" and not os.path.isdir(target):
                    Path(target).write_text("#!/bin/sh\n")
                    os.chmod(target, stat.S_IRWXU)
        except (OSError, ValueError, UnicodeEncodeError):
            return None
        return target


def _raw_app(key: str, value: str, box: Sandbox, variant: bool) -> dict[str, object]:
    """An app whose `key` is `value`; files it needs exist when the value allows."""
    raw: dict[str, object] = {"name": "app", "script": "tool", "interpreter": "none"}
    box.make("tool", "exec")
    if key == "script":
        box.make(value, "exec")
        raw.update(script=value, interpreter="none" if variant else "sh")
    elif key == "interpreter":
        raw.update(script="tool", interpreter=box.make(value, "exec") or value)
    elif key == "cwd":
        box.make(value, "dir")
        raw.update(cwd=value, script=os.path.join(box.base, "tool"))  # relative scripts start from cwd
    elif key in ("args", "interpreter_args", "watch", "ignore_watch"):
        raw[key] = [value, "--x"] if variant else value
        if key == "interpreter_args":
            raw["interpreter"] = "sh"
    elif key in ("out_file", "error_file", "log_file"):
        box.make(value, "parent")
        raw[key] = value
    elif key == "env":
        raw["env"] = {"HOSTILE": value}
    elif key == "port":
        raw.update(port=value, instances=2)
    else:
        raw[key] = value
    return raw


def build(raw: dict[str, object], base: str) -> AppSpec | None:
    """The spec, or None when pmsd refused the definition (a UsageError naming the file, app and key)."""
    try:
        return build_spec(raw, Source("eco.json", base), None, SYSTEM_PATH, [])
    except UsageError as error:
        assert error.message.startswith("eco.json: "), error.message
        return None


@pytest.fixture(scope="module")
def state_dir() -> str:
    return "/var/lib/pm[s]d*?/state"  # never created: glob characters in pmsd's own directory too


@pytest.mark.parametrize("key", STRING_KEYS)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), variant=st.booleans())
def test_hostile_value_is_refused_or_reads_back_exactly(key: str, data: st.DataObject, variant: bool,
                                                        state_dir: str) -> None:
    value = data.draw(st.one_of(HOSTILE, st.sampled_from(UNUSUAL.get(key, ["x"]))), label="value")
    with tempfile.TemporaryDirectory(prefix="pmsd-uv-") as base:
        spec = build(_raw_app(key, value, Sandbox(base), variant), base)
        if spec is None:
            return
        _assert_value_kept(key, value, spec, base, variant)
        check_everything_reads_back(spec, state_dir)


def _assert_value_kept(key: str, value: str, spec: AppSpec, base: str, variant: bool) -> None:
    """pmsd kept what the user wrote (a path joined to its base and normalized), it did not quietly change it."""
    if key == "name" and not value:
        assert spec.name == "tool"  # PM2's default: the script's name
    elif key in ("name", "user", "group", "namespace", "log_date_format"):
        assert getattr(spec, key) == value
    elif key in ("args", "interpreter_args"):
        assert getattr(spec, key) == ((value, "--x") if variant else tuple(shlex.split(value)))
    elif key == "cwd":
        # A leading "~" is the user's home, as a shell (and PM2, for log paths) reads it.
        assert spec.cwd == "/" + os.path.normpath(os.path.join(base, os.path.expanduser(value))).lstrip("/")
    elif key in ("out_file", "log_file", "error_file"):
        expected = "/" + os.path.normpath(os.path.join(base, os.path.expanduser(value))).lstrip("/")
        assert getattr(spec, key) in (None, expected)


# ================================================================================ what systemd reads back


def check_everything_reads_back(spec: AppSpec, state_dir: str) -> None:
    env_file_path = os.path.join(state_dir, "env", "7.env")
    inputs = UnitInputs(spec, env_file_path, system=True)
    check_fork_unit_file(spec, render_unit_file(inputs, SYSTEMD_FLOOR), env_file_path)
    check_transient_properties(spec, inputs, env_file_path)
    cluster = replace(spec, exec_mode="cluster", instances=2, port=spec.port or "127.0.0.1:3000")
    registry = Registry(state_dir)
    files = render_cluster_units(UnitInputs(cluster, registry.instance_env_file(cluster.name, "%i"), system=True),
                                 SYSTEMD_FLOOR)
    check_cluster_units(cluster, files, registry.instance_env_file(cluster.name, 1))


def _expected_keys(spec: AppSpec, unit_type: str = "service") -> collections.Counter[str]:
    inputs = UnitInputs(spec, "/e", system=True)
    return collections.Counter(a.directive.name for a in assignments(inputs, SYSTEMD_FLOOR, unit_type=unit_type))


def check_fork_unit_file(spec: AppSpec, text: str, env_file_path: str) -> None:
    entries = read_unit(text)
    assert collections.Counter(e.key for e in entries) == _expected_keys(spec), text
    for entry in entries:
        check_value(spec, entry, env_file_path, instance=None, description=f"pmsd app {spec.name}")


def check_value(spec: AppSpec, entry: Entry, env_file_path: str, instance: str | None, description: str) -> None:
    """One assignment against what pmsd meant by it; directives that hold no user value are skipped."""
    checks: dict[str, Callable[[str], object]] = {
        "Description": lambda v: printf(v, instance) == description,
        "SyslogIdentifier": lambda v: printf(v) == spec.name,
        "WorkingDirectory": lambda v: plain_path(v) == spec.cwd,
        "User": lambda v: user_group(v) == spec.user,
        "Group": lambda v: user_group(v) == spec.group,
        "EnvironmentFile": lambda v: env_file(v, instance) == env_file_path,
        "ExecStart": lambda v: _command_is(parse_exec(v, instance), spec),
        "ListenStream": lambda v: printf(v) == spec.port,
    }
    if entry.key == "StandardOutput" and entry.value != "null":
        assert append_path(entry.value) == (spec.out_file or spec.log_file), entry
    elif entry.key == "StandardError" and entry.value not in ("null", "journal"):
        assert append_path(entry.value) == (spec.error_file or spec.log_file), entry
    elif entry.key in checks:
        assert checks[entry.key](entry.value), entry


def _command_is(command: Command, spec: AppSpec) -> bool:
    assert command.prefixes <= {"@"}, command
    assert command.path == spec.exec_path, (command, spec.exec_path)
    assert command.executed_argv() == list(spec.argv), (command, spec.argv)
    return True


def _unbackslash(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def check_cluster_units(spec: AppSpec, files: dict[str, str], env_file_path: str) -> None:
    template = read_unit(files[template_unit(spec.name)])
    socket = socket_unit(spec.name)
    per_instance = collections.Counter(["StandardOutput", "StandardError"]) & _expected_keys(spec)
    expected = _expected_keys(spec) - collections.Counter(["Description", "EnvironmentFile"]) - per_instance
    expected += collections.Counter(["Description", "EnvironmentFile", "Sockets", "Requires", "After", "Wants"])
    assert collections.Counter(e.key for e in template) == expected, files
    # Where output goes is per instance (PM2's -<pm_id> files): a drop-in of each instance's own.
    instance_spec = AppRecord(5, spec, 0, instance=1).log_spec
    dropin = read_unit(render_log_dropin(UnitInputs(instance_spec, env_file_path, system=True), SYSTEMD_FLOOR))
    assert collections.Counter(e.key for e in dropin) == per_instance
    for entry in dropin:
        check_value(instance_spec, entry, env_file_path, "1", "")
    for entry in template:
        check_value(spec, entry, env_file_path, "1", f"pmsd app {spec.name} (instance 1)")
        if entry.key in ("Sockets", "Requires", "After", "Wants"):
            # Sockets= reads its words with extract_first_word(flags 0): a backslash takes the next character
            # as it is (config_parse_service_sockets(), load-fragment.c); the dependency lists keep backslashes.
            value = _unbackslash(entry.value) if entry.key == "Sockets" else entry.value
            assert printf(value) == (listener_unit(spec.name) if entry.key == "Wants" else socket), entry
    socket_entries = read_unit(files[socket])
    assert collections.Counter(e.key for e in socket_entries) == (
        _expected_keys(spec, "socket") + collections.Counter(["Description", "ReusePort", "Service"]))
    for entry in socket_entries:
        check_value(spec, entry, env_file_path, None, f"pmsd app {spec.name}: shared listening socket")
    holder = read_unit(files[listener_unit(spec.name)])
    assert [printf(e.value) for e in holder if e.key == "Description"] == [f"pmsd app {spec.name}: socket holder"]
    assert {e.key for e in holder} == {"Description", "BindsTo", "After", "Type", "RemainAfterExit", "ExecStart"}


def check_transient_properties(spec: AppSpec, inputs: UnitInputs, env_file_path: str) -> None:
    """What travels on D-Bus, as systemd takes it and as it writes it into the transient unit's file."""
    props = {p.name: p.value for p in transient_properties(inputs, SYSTEMD_FLOOR)}
    plain = {"Description": f"pmsd app {spec.name}", "SyslogIdentifier": spec.name, "WorkingDirectory": spec.cwd,
             "User": spec.user, "Group": spec.group, "StandardOutputFileToAppend": spec.out_file or spec.log_file,
             "StandardErrorFileToAppend": spec.error_file or spec.log_file}
    for name, expected in plain.items():
        if name in props:
            assert props[name] == expected, (name, props[name])
            # systemd writes it into the transient unit's file with specifiers escaped (unit_write_setting()),
            # and a daemon-reload reads it back.
            (written,) = read_unit(f"[Service]\n{name}={str(props[name]).replace('%', '%%')}\n")
            assert printf(written.value) == expected, (name, written)
    if "User" in props:
        assert valid_user_group_name(props["User"])
    (path, argv, ignore), = props["ExecStart"]
    assert path == spec.exec_path and path.startswith("/") and not ignore
    assert Command(path, argv, frozenset()).executed_argv() == list(spec.argv)
    assert [glob_literal(pattern) for pattern, _ in props["EnvironmentFiles"]] == [env_file_path]


# ================================================================================ fixed cases


INJECTION = 'alice\nExecStartPre=+/bin/sh -c "id > /tmp/owned"'


@pytest.mark.parametrize("key", ["user", "group", "cwd", "out_file", "error_file", "log_file", "name", "script",
                                 "interpreter", "namespace", "cron_restart"])
def test_issue_11_injection_is_refused_naming_file_app_and_key(key: str, app_dir: Path) -> None:
    raw: dict[str, object] = {"name": "api", "script": "tool", key: INJECTION if key != "cron_restart" else
                              "0 0\n* * *"}
    if key == "name":
        raw["name"] = INJECTION
    with pytest.raises(UsageError) as caught:
        build_spec(raw, Source("ecosystem.config.json", str(app_dir)), None, SYSTEM_PATH, [])
    label = f"app {INJECTION!r}" if key == "name" else "app 'api'"
    assert caught.value.message.startswith(f"ecosystem.config.json: {label}, key {key!r}: "), caught.value.message


def test_issue_11_reproduction_never_renders_the_injected_line(app_dir: Path) -> None:
    """The reported exploit, as far as pmsd would have carried it: a cluster unit file with an ExecStartPre=
    line. Now the definition is refused; had a value slipped through, rendering itself refuses it."""
    spec = AppSpec(name="api", script=str(app_dir / "tool"), interpreter="none", exec_path=str(app_dir / "tool"),
                   argv=(str(app_dir / "tool"),), cwd=str(app_dir), exec_mode="cluster", instances=2, user=INJECTION)
    with pytest.raises(UsageError):
        render_cluster_units(UnitInputs(spec, "/var/lib/pmsd/env/pmsd-api@%i.env", system=True), SYSTEMD_FLOOR)
    with pytest.raises(UsageError):
        transient_properties(UnitInputs(replace(spec, exec_mode="fork", instances=1), "/e", system=True),
                             SYSTEMD_FLOOR)


@pytest.mark.parametrize("port", ["[fe80::1%eth0]:80", "[fe80::1%a\nListenStream=9]:80"])
def test_ipv6_zone_cannot_reach_listen_stream(port: str, app_dir: Path) -> None:
    with pytest.raises(UsageError, match="zone"):
        build_spec({"script": "tool", "instances": 2, "port": port}, Source("e.json", str(app_dir)), None,
                   SYSTEM_PATH, [])


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"args": ["x" * (128 * 1024 + 1)]}, "longer than Linux passes to a program"),
    ({"args": ["x" * 128 * 1024] * 9}, "LONG_LINE_MAX"),
    ({"args": ["a\0b"]}, "NUL"),
    ({"user": "65535"}, "numeric uid"), ({"user": "a:b"}, "':' or '/'"), ({"group": "-"}, "negative"),
    ({"user": "alice\\"}, "line continuation"), ({"name": " api"}, "space"), ({"name": "api\x85"}, "control"),
    ({"out_file": "out.log\\"}, "line continuation"), ({"out_file": "out.log "}, "space"),
])
def test_values_systemd_cannot_hold_are_refused(raw: dict[str, object], fragment: str, app_dir: Path) -> None:
    with pytest.raises(UsageError) as caught:
        build_spec({"name": "api", "script": "tool", **raw}, Source("e.json", str(app_dir)), None, SYSTEM_PATH, [])
    assert fragment in caught.value.message + (caught.value.hint or ""), caught.value.message


def test_log_file_name_longer_than_name_max_is_refused(app_dir: Path) -> None:
    with pytest.raises(UsageError, match=r"key 'log_file'.*longer than 255 bytes"):
        build_spec({"script": "tool", "log_file": "x" * 256}, Source("e.json", str(app_dir)), None, SYSTEM_PATH, [])


@pytest.mark.parametrize("name", ["my api", "a\\b", "日本", "x*?[y]"])
def test_cluster_instance_env_file_glob_matches_only_itself(name: str) -> None:
    registry = Registry("/var/lib/pm[s]d")
    spec = AppSpec(name=name, script="/srv/a", interpreter="none", exec_path="/srv/a", argv=("/srv/a",),
                   cwd="/srv", exec_mode="cluster", instances=2)
    text = render_cluster_units(UnitInputs(spec, registry.instance_env_file(name, "%i")),
                                SYSTEMD_FLOOR)[template_unit(name)]
    (entry,) = [e for e in read_unit(text) if e.key == "EnvironmentFile"]
    assert env_file(entry.value, instance="3") == registry.instance_env_file(name, 3)


def test_dollar_in_program_path_uses_the_separate_argv0_form(tmp_path: Path) -> None:
    program = tmp_path / "a$b${c}"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    spec = build_spec({"script": str(program), "interpreter": "none", "args": ["$HOME"]},
                      Source("e.json", str(tmp_path)), None, SYSTEM_PATH, [])
    (line,) = [e for e in read_unit(render_unit_file(UnitInputs(spec, "/e"), SYSTEMD_FLOOR)) if e.key == "ExecStart"]
    command = parse_exec(line.value)
    assert command.prefixes == {"@"} and command.path == str(program)
    assert command.executed_argv() == [str(program), "$HOME"]


def test_state_directory_systemd_cannot_name_is_refused() -> None:
    spec = AppSpec(name="a", script="/srv/a", interpreter="none", exec_path="/srv/a", argv=("/srv/a",), cwd="/srv")
    with pytest.raises(UsageError, match="PMSD_STATE_DIR"):
        transient_properties(UnitInputs(spec, "/var/lib/pmsd\n/env/0.env"), SYSTEMD_FLOOR)
    with pytest.raises(UsageError, match="PMSD_STATE_DIR"):
        transient_properties(UnitInputs(spec, "relative/env/0.env"), SYSTEMD_FLOOR)

