"""A real terminal for full-screen commands (`pmsd monit`, `pmsd ls --watch`, `pm2 monit`): one pane of a tmux
server of its own, keys sent with send-keys, the screen read with capture-pane. Used by tests/e2e/test_monit.py
and tests/bench/bench_monit.py.

The server has its own socket (`tmux -L <name>`) and no configuration file, so neither the user's tmux nor
another test's is touched, and it starts with the caller's environment, which the command inherits."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile


class Tmux:
    """One command in a width x height pane; the pane stays after the command ends, so that its exit status can
    be read. close() ends the session and the server (by their name) and removes the socket."""

    def __init__(self, env: dict[str, str], name: str, width: int = 80, height: int = 24) -> None:
        self.env = {key: value for key, value in env.items() if key != "TMUX"}
        self.name, self.width, self.height = name, width, height
        # The command's exit status, written by the shell that runs it: tmux 3.3a (Debian 12) may leave a pane
        # whose terminal closed before its process ended unreaped, with no #{pane_dead_status}.
        self.status_file = os.path.join(tempfile.gettempdir(), f"{name}.{os.getpid()}.status")

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.name, "-f", os.devnull, *args], capture_output=True, text=True,
                              env=self.env, timeout=10)

    def create(self, cwd: str) -> None:
        """The session, with a shell for now, and remain-on-exit set: a command that fails at once still leaves
        its pane (and its status) to look at."""
        created = self.tmux("new-session", "-d", "-s", self.name, "-x", str(self.width), "-y", str(self.height),
                            "-c", cwd)
        if created.returncode != 0:
            raise RuntimeError(f"tmux new-session: {created.stderr.strip()}")
        self.tmux("set-option", "-t", self.name, "remain-on-exit", "on")

    def launch(self, command: list[str], cwd: str) -> None:
        """Run `command` in the pane, in place of what runs there."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.status_file)
        status = shlex.quote(self.status_file)
        line = f"{shlex.join(command)}; echo $? > {status}.tmp && mv {status}.tmp {status}"
        respawned = self.tmux("respawn-pane", "-k", "-t", self.name, "-c", cwd, line)
        if respawned.returncode != 0:
            raise RuntimeError(f"tmux respawn-pane: {respawned.stderr.strip()}")

    def start(self, command: list[str], cwd: str) -> None:
        self.create(cwd)
        self.launch(command, cwd)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").stdout.strip() or 0)

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        try:
            with open(self.status_file, encoding="ascii") as handle:
                return int(handle.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def close(self) -> None:
        socket = self.tmux("display-message", "-p", "#{socket_path}").stdout.strip()
        self.tmux("kill-session", "-t", self.name)
        self.tmux("kill-server")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.status_file)
        if socket.endswith(f"/{self.name}"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket)  # tmux leaves its socket behind
