"""pmsd's global settings (`pmsd set`, pmsd.definition.config): keys, PM2's names, and how an app's own option
and the global one combine."""

from __future__ import annotations

import pytest

from pmsd.definition.config import parse_config_value, pm2_log_name, with_pm2_log_paths
from pmsd.errors import UsageError
from pmsd.god.logwriter import Rotation, rotation_of
from tests.unit.helpers import make_spec


def test_pm2_logrotate_keys_are_pmsd_keys() -> None:
    assert parse_config_value("pm2-logrotate:max_size", "10M") == ("log_max_size", 10 << 20)
    assert parse_config_value("pm2-logrotate:retain", "5") == ("log_retain", 5)
    assert parse_config_value("log_compress", "true") == ("log_compress", True)
    assert parse_config_value("log_rotate_interval", "24h") == ("log_rotate_interval", 86_400_000)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("workerInterval", "30", "no global setting 'workerInterval'"),
    ("log_retain", "-1", "set log_retain:"),
    ("pm2_log_paths", "yes", "expected true or false"),
])
def test_a_bad_key_or_value_is_refused_with_the_reason(key: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_config_value(key, value)


def test_an_apps_own_rotation_wins_over_the_global_one() -> None:
    config = {"log_max_size": 1000, "log_retain": 3, "log_compress": True}
    assert rotation_of(make_spec(), {}) == Rotation(None, None, 30, False)
    assert rotation_of(make_spec(), config) == Rotation(1000, None, 3, True)
    own = make_spec(log_max_size=50, log_retain=0, log_compress=False, log_rotate_interval=60_000)
    assert rotation_of(own, config) == Rotation(50, 60, 0, False)


def test_pm2s_default_file_names() -> None:
    # PM2 7 (tests/pm2/test_logfiles_pm2.py): what is not a letter, digit, "." or "-" becomes "-"
    assert pm2_log_name("we ird.n@me") == "we-ird.n-me"
    assert pm2_log_name("a_b-c.d~e!f") == "a-b-c.d-e-f"
    spec = with_pm2_log_paths(make_spec(name="api", error_file="/l/e.log"), "/h/.pm2/logs")
    assert (spec.out_file, spec.error_file) == ("/h/.pm2/logs/api-out.log", "/l/e.log")
    assert with_pm2_log_paths(make_spec(disable_logs=True), "/h").out_file is None
