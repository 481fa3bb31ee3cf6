from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsd.errors import ExitStatus, UsageError
from pmsd.systemd.names import (
    INSTANCE_SUFFIX_MAX,
    UNIT_NAME_MAX,
    app_name_of_unit,
    app_of_unit,
    check_app_name,
    escape_name,
    instance_slice,
    instance_unit,
    listener_unit,
    service_unit,
    socket_unit,
    template_unit,
    unescape_name,
)

# What systemd accepts in a unit name (unit-name.c VALID_CHARS), the "@" template marker excluded.
_UNIT_CHARS = re.compile(r"^[A-Za-z0-9:_.\\-]+$")

TRICKY_NAMES = [
    "api", "my-api", "my api", "my_api", "my.api", ".hidden", "..", "a.", "a..b", "-", "--", "-x",
    "a/b", "/", "a@b", "@", "a\\b", "\\", "\\x2d", "\\x5c", "x2d", "café", "cafe\u0301", "日本", "🚀 launch",
    "a:b", "tab\tless", "%i", "100%", "$HOME", "'quoted'", '"double"', "a b c", " lead", "trail ",
    "UPPER", "MiXeD-1.2_3", "a" * 100, "\u00a0", "\u2028", "ß", "Ω", "🙂", "x" + "\U0010ffff",
]


def test_ascii_alphanumerics_and_kept_punctuation_are_literal() -> None:
    assert escape_name("my-api_v2:prod.1") == "my-api_v2:prod.1"


def test_dash_stays_literal_unlike_systemd_escape() -> None:
    assert escape_name("my-api") == "my-api"
    assert service_unit("my-api") == "pmsd-my-api.service"


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("my api", "my\\x20api"),
        ("a/b", "a\\x2fb"),
        ("a@b", "a\\x40b"),
        ("a\\b", "a\\x5cb"),
        (".hidden", "\\x2ehidden"),
        ("a.b", "a.b"),
        ("é", "\\xc3\\xa9"),
        ("日本", "\\xe6\\x97\\xa5\\xe6\\x9c\\xac"),
        ("🚀", "\\xf0\\x9f\\x9a\\x80"),
    ],
)
def test_escape_writes_other_bytes_as_lowercase_hex(name: str, escaped: str) -> None:
    assert escape_name(name) == escaped
    assert unescape_name(escaped) == name


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_round_trip_and_valid_unit_characters(name: str) -> None:
    escaped = escape_name(name)
    assert unescape_name(escaped) == name
    assert _UNIT_CHARS.match(escaped), escaped
    assert app_name_of_unit(service_unit(name)) == name


def test_escaping_is_injective_on_tricky_names() -> None:
    escaped = [escape_name(name) for name in set(TRICKY_NAMES)]
    assert len(set(escaped)) == len(escaped)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30))
def test_round_trip_any_text(name: str) -> None:
    escaped = escape_name(name)
    assert _UNIT_CHARS.match(escaped)
    assert not escaped.startswith(".")
    assert unescape_name(escaped) == name


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12),
)
def test_escaping_is_injective(first: str, second: str) -> None:
    if first != second:
        assert escape_name(first) != escape_name(second)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0", "number"),
        ("42", "number"),
        ("all", "reserved"),
        ("new\nline", "control"),
        ("tab\there", "control"),
        ("nul\0", "control"),
        ("del\x7f", "control"),
        ("x" * 300, "too long"),
        ("日" * 60, "too long"),
    ],
)
def test_check_app_name_rejects(name: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_app_name(name)
    assert fragment in caught.value.message
    assert caught.value.status == ExitStatus.USAGE
    assert caught.value.hint


@pytest.mark.parametrize("name", ["api", "1a", "a1", "All", "all-apps", "my api", "日本", "🚀", ".x", "-"])
def test_check_app_name_accepts(name: str) -> None:
    check_app_name(name)


def test_longest_accepted_name_fills_the_unit_name_limit() -> None:
    # Room is kept for a cluster instance's "@<n>" (any uint32), so every app can be scaled.
    budget = UNIT_NAME_MAX - len("pmsd-.service") - INSTANCE_SUFFIX_MAX
    check_app_name("x" * budget)
    with pytest.raises(UsageError):
        check_app_name("x" * (budget + 1))
    # A non-ASCII character costs four bytes per UTF-8 byte once escaped.
    check_app_name("é" * (budget // 8))
    with pytest.raises(UsageError):
        check_app_name("é" * (budget // 8 + 1))


@pytest.mark.parametrize(
    ("unit", "name"),
    [
        ("pmsd-api.service", "api"),
        ("pmsd-my-api.service", "my-api"),
        ("pmsd-my\\x20api.service", "my api"),
        ("pmsd-\\xe6\\x97\\xa5.service", "日"),
        ("pmsd-pmsd-x.service", "pmsd-x"),
        ("pmsd-api.socket", None),
        ("api.service", None),
        ("other-pmsd-api.service", None),
        ("pmsd-api.service.d", None),
    ],
)
def test_app_name_of_unit(unit: str, name: str | None) -> None:
    assert app_name_of_unit(unit) == name


def test_app_name_of_unit_with_non_utf8_escape_is_not_an_app() -> None:
    assert app_name_of_unit("pmsd-\\xff.service") is None


def test_cluster_unit_names() -> None:
    assert instance_unit("api", 3) == "pmsd-api@3.service"
    assert template_unit("api") == "pmsd-api@.service"
    assert socket_unit("api") == "pmsd-api.socket"
    assert listener_unit("api") == "pmsd.listen-api.service"
    assert instance_slice("my-api", user=True) == "app-pmsd\\x2dmy\\x2dapi.slice"
    assert instance_slice("a b", user=False) == "system-pmsd\\x2da\\x5cx20b.slice"
    # An "@" in a name is escaped, so the first literal "@" always separates the instance.
    assert instance_unit("a@b", 0) == "pmsd-a\\x40b@0.service"


@pytest.mark.parametrize(("unit", "parsed"), [
    ("pmsd-api@3.service", ("api", 3)),
    ("pmsd-api.service", ("api", None)),
    ("pmsd-a\\x40b@0.service", ("a@b", 0)),
    ("pmsd-api@.service", None),
    ("pmsd-api@x.service", None),
    ("pmsd.listen-api.service", None),
])
def test_app_of_unit(unit: str, parsed: tuple[str, int | None] | None) -> None:
    assert app_of_unit(unit) == parsed
