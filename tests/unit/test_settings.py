from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pmsd.definition.settings import (
    ALIASES,
    MS_MAX,
    NO_EFFECT,
    SETTINGS,
    SETTINGS_BY_KEY,
    SYSTEMD_FLOOR,
    U32_MAX,
    Setting,
    parse_argv,
    parse_bool,
    parse_count,
    parse_duration_ms,
    parse_env,
    parse_exit_codes,
    parse_filter_env,
    parse_positive_duration_ms,
    parse_str,
)
from pmsd.model.spec import AppSpec
from tests.unit.helpers import is_single_complete_type

# ------------------------------------------------------------------------------------------- parse_filter_env


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("False", False), (" TRUE ", True),
    ("AWS_", ("AWS_",)), ("AWS_,SECRET", ("AWS_", "SECRET")), (" AWS_ , SECRET ,", ("AWS_", "SECRET")),
    (["AWS_", "SECRET"], ("AWS_", "SECRET")), (["A", "A"], ("A",)), ([], False), ("", False), (",", False),
    (["true"], ("true",)),  # in a list, a string is a string
])
def test_parse_filter_env(value: object, expected: object) -> None:
    assert parse_filter_env(value) == expected


@pytest.mark.parametrize("value", [3, None, {"A": 1}, [True], [["A"]], [None]])
def test_parse_filter_env_rejects_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_filter_env(value)


def test_parse_filter_env_refuses_an_empty_string_that_would_match_everything() -> None:
    with pytest.raises(ValueError, match="empty string would match every variable"):
        parse_filter_env(["AWS_", ""])


def test_filter_env_and_treekill_are_settings_not_warnings() -> None:
    assert {"filter_env", "treekill"} <= set(SETTINGS_BY_KEY)
    assert not {"filter_env", "treekill"} & set(NO_EFFECT)
    assert SETTINGS_BY_KEY["treekill"].default is True and SETTINGS_BY_KEY["filter_env"].default is False
    assert [(d.name, d.dbus_name, d.signature) for d in SETTINGS_BY_KEY["treekill"].directives] == [
        ("KillMode", "KillMode", "s")]


# ------------------------------------------------------------------------------------------- parse_bool


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("false", False), ("TRUE", True), ("False", False),
])
def test_parse_bool(value: object, expected: bool) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", 1, 0, None, "", [], {}])
def test_parse_bool_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected true or false"):
        parse_bool(value)


# ------------------------------------------------------------------------------------------- parse_str


@pytest.mark.parametrize(("value", "expected"), [("api", "api"), (3, "3"), (1.5, "1.5"), ("", "")])
def test_parse_str(value: object, expected: str) -> None:
    assert parse_str(value) == expected


@pytest.mark.parametrize("value", [True, None, [], {}, ("a",)])
def test_parse_str_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected a string"):
        parse_str(value)


# ------------------------------------------------------------------------------------------- parse_count


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0), (16, 16), ("3", 3), (" 7 ", 7), (5.0, 5), (U32_MAX, U32_MAX), (str(U32_MAX), U32_MAX),
])
def test_parse_count(value: object, expected: int) -> None:
    assert parse_count(value) == expected


@pytest.mark.parametrize(("value", "fragment"), [
    (-1, "from 0 to"), ("-1", "from 0 to"), (U32_MAX + 1, "from 0 to"), (1.5, "whole number"),
    ("abc", "whole number"), ("", "whole number"), (True, "whole number"), (None, "whole number"),
    ([1], "whole number"), ("1e3", "whole number"),
])
def test_parse_count_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_count(value)


# ------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("value", "expected"), [
    ("1500", 1500), (1500, 1500), (1500.0, 1500), ("0", 0), (0, 0), ("250ms", 250), ("2s", 2000),
    ("1m", 60_000), ("1h", 3_600_000), (" 2 s ", 2000), ("90m", 5_400_000), (MS_MAX, MS_MAX),
])
def test_parse_duration_ms(value: object, expected: int) -> None:
    assert parse_duration_ms(value) == expected


@pytest.mark.parametrize("value", [
    "abc", "", "2 seconds", "1.5s", "2d", "s", "-5", "-2s", "2S", "1h30m", -1, 1.5, True, None, [1000],
    MS_MAX + 1, f"{MS_MAX + 1}",
])
def test_parse_duration_ms_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(value)


def test_parse_duration_error_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"duration like '2s'.*'soon'"):
        parse_duration_ms("soon")


def test_parse_positive_duration_rejects_zero() -> None:
    assert parse_positive_duration_ms("1") == 1
    with pytest.raises(ValueError, match="above 0"):
        parse_positive_duration_ms(0)
    with pytest.raises(ValueError, match="above 0"):
        parse_positive_duration_ms("0s")


# ------------------------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(("value", "expected"), [
    (0, (0,)), (3, (3,)), ("3", (3,)), ([0, 3], (0, 3)), ([3, 0, 3], (0, 3)), ("0,3", (0, 3)),
    ("0, 3 9", (0, 3, 9)), (" 9,3 ", (3, 9)), ("", ()), ([], ()), (255, (255,)), (["1", 2.0], (1, 2)),
])
def test_parse_exit_codes(value: object, expected: tuple[int, ...]) -> None:
    assert parse_exit_codes(value) == expected


@pytest.mark.parametrize(("value", "fragment"), [
    (256, "0 to 255"), (-1, "0 to 255"), ([0, 300], "0 to 255"), ("0,256", "0 to 255"),
    ("0,x", "whole number"), (None, "whole number"), (True, "whole number"), ([[0]], "whole number"),
    ({"a": 1}, "whole number"),
])
def test_parse_exit_codes_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_exit_codes(value)


# ------------------------------------------------------------------------------------------- argv


@pytest.mark.parametrize(("value", "expected"), [
    ("--port 80", ("--port", "80")),
    ("", ()),
    ("'hello world' \"x y\" z", ("hello world", "x y", "z")),
    ("a\\ b", ("a b",)),
    ("it\\'s", ("it's",)),
    (["--port", "80"], ("--port", "80")),
    (["hello world", ""], ("hello world", "")),
    ([1, 2.5], ("1", "2.5")),
    ([], ()),
])
def test_parse_argv(value: object, expected: tuple[str, ...]) -> None:
    assert parse_argv(value) == expected


@pytest.mark.parametrize("value", ["'unterminated", '"half', "trailing\\"])
def test_parse_argv_rejects_bad_quoting(value: str) -> None:
    with pytest.raises(ValueError, match="cannot split"):
        parse_argv(value)


@pytest.mark.parametrize("value", [None, 3, {"a": 1}, [None], [["nested"]], [True]])
def test_parse_argv_rejects_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="expected a string"):
        parse_argv(value)


# ------------------------------------------------------------------------------------------- env


def test_parse_env_stringifies_scalars_like_pm2() -> None:
    assert parse_env({"S": "x", "I": 3, "F": 1.5, "T": True, "N": False, "E": ""}) == {
        "S": "x", "I": "3", "F": "1.5", "T": "true", "N": "false", "E": "",
    }


def test_parse_env_json_encodes_nested_values() -> None:
    env = parse_env({"LIST": [1, "a"], "MAP": {"k": {"n": None}}})
    assert json.loads(env["LIST"]) == [1, "a"]
    assert json.loads(env["MAP"]) == {"k": {"n": None}}


def test_parse_env_gives_values_as_pm2_passes_them() -> None:
    # PM2 hands env values to the process as JavaScript prints them: null, numbers, booleans, JSON objects.
    assert parse_env({"A": None, "B": "b", "C": 3, "D": 2.5, "E": True, "F": {"x": [1, "y"]}}) == {
        "A": "null", "B": "b", "C": "3", "D": "2.5", "E": "true", "F": '{"x":[1,"y"]}'}


def test_parse_env_keeps_values_verbatim() -> None:
    value = "a=b \"q\" $HOME `x` \\ \n é 日本 🚀"
    assert parse_env({"V": value}) == {"V": value}


@pytest.mark.parametrize("key", ["", "A=B", "=", "NEW\nLINE", "TAB\tX"])
def test_parse_env_rejects_bad_names(key: str) -> None:
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        parse_env({key: "x"})


def test_parse_env_rejects_nul_in_values() -> None:
    with pytest.raises(ValueError, match="NUL"):
        parse_env({"A": "x\0y"})


@pytest.mark.parametrize("value", [None, "A=1", ["A=1"], 3])
def test_parse_env_rejects_non_mappings(value: object) -> None:
    with pytest.raises(ValueError, match="expected a mapping"):
        parse_env(value)


# ------------------------------------------------------------------------------------------- the table


def _as_raw(value: object) -> object:
    """A typed default as it would be written in a JSON ecosystem file."""
    if isinstance(value, tuple):
        return [_as_raw(item) for item in value]
    return value


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.key for s in SETTINGS])
def test_every_default_parses_back_to_itself(setting: Setting) -> None:
    if setting.default is None:
        return
    assert setting.parse(_as_raw(setting.default)) == setting.default


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.key for s in SETTINGS])
def test_every_row_is_well_formed(setting: Setting) -> None:
    assert setting.key and setting.help.strip()
    assert callable(setting.parse)
    assert setting.flag is None or setting.flag.startswith("-")
    for directive in setting.directives:
        assert directive.name and directive.dbus_name and directive.signature
        assert is_single_complete_type(directive.signature), (directive.name, directive.signature)
        assert directive.min_version >= SYSTEMD_FLOOR >= 252
        assert callable(directive.encode) and callable(directive.render)


def test_table_defaults_agree_with_appspec_defaults() -> None:
    for spec_field in dataclasses.fields(AppSpec):
        setting = SETTINGS_BY_KEY.get(spec_field.name)
        if setting is None:
            continue
        if spec_field.default is not dataclasses.MISSING:
            assert spec_field.default == setting.default, spec_field.name
        elif spec_field.default_factory is not dataclasses.MISSING:
            assert spec_field.default_factory() == setting.default, spec_field.name


def test_keys_aliases_and_not_yet_honoured_are_disjoint() -> None:
    keys = [s.key for s in SETTINGS]
    assert len(keys) == len(set(keys))
    assert not set(ALIASES) & set(keys)
    assert not set(NO_EFFECT) & set(keys)
    assert not set(NO_EFFECT) & set(ALIASES)
    assert ALIASES["node_args"] == "interpreter_args"
    assert ALIASES["uid"] == "user"


# systemd appends each Environment property (and each Environment= line) to the unit's list
# (bus_exec_context_set_transient_property, src/core/dbus-execute.c): the one property two rows may both set.
APPENDING_PROPERTIES = {"Environment"}


def test_dbus_property_names_are_unique() -> None:
    # Two rows may render the same unit-file directive (StandardOutput=null vs append:), never the same property.
    dbus_names = [d.dbus_name for s in SETTINGS for d in s.directives if d.dbus_name not in APPENDING_PROPERTIES]
    assert len(dbus_names) == len(set(dbus_names))


@pytest.mark.parametrize(("signature", "valid"), [
    ("s", True), ("t", True), ("a(sb)", True), ("a(sasb)", True), ("(aiai)", True), ("a{sv}", True),
    ("v", True), ("", False), ("ss", False), ("a", False), ("(", False), ("()", False), ("(i", False),
    ("a{vs}", False), ("a{s}", False), ("z", False), ("a(sb", False), ("i)", False),
])
def test_signature_checker_itself(signature: str, valid: bool) -> None:
    assert is_single_complete_type(signature) is valid


def test_readme_names_every_key_with_no_effect() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Ecosystem files as PM2 reads them", 1)[1].split("\nWhere pmsd differs", 1)[0]
    assert [key for key in NO_EFFECT if f"`{key}`" not in section] == []
