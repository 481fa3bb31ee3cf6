"""With no systemd manager to reach, the error says where pmsd looked and what to do (issue 11 item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmsd.errors import ExitStatus, PmsdError
from pmsd.systemd.bus import Manager


def test_no_user_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/bus")
    with pytest.raises(PmsdError) as raised:
        Manager.connect(user=True)
    error = raised.value
    assert error.status == ExitStatus.NO_SYSTEMD
    assert error.message == (f"cannot reach the systemd user manager: neither its socket {tmp_path}/systemd/private "
                             "nor the user bus answers (No such file or directory)")
    assert error.hint is not None
    assert "loginctl enable-linger $USER" in error.hint and "XDG_RUNTIME_DIR=/run/user/$(id -u)" in error.hint
    assert "tests/harness" not in error.hint and "Could not open a bus" not in error.message
