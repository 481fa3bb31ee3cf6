"""`pmsd ecosystem` / `pmsd init`: a commented starter ecosystem.config.js in the current directory.

The file is PM2's format (module.exports = {apps: [...]}), so it works with pm2 too. An existing file is never
overwritten.
"""

from __future__ import annotations

import os

from pmsd.errors import UsageError

FILE_NAME = "ecosystem.config.js"

SIMPLE = """\
module.exports = {
  apps: [{
    name: "app",
    script: "app.js",
  }],
};
"""

COMMENTED = """\
// pmsd (and PM2) ecosystem file: `pmsd start ecosystem.config.js`, `pmsd startOrRestart ecosystem.config.js`.
// Every key below is optional except script. `pmsd start --help` lists each option; the README says what
// systemd does with it.
module.exports = {
  apps: [
    {
      name: "app",                   // the app's name; unit pmsd-app.service
      script: "app.js",              // a file (interpreter chosen by extension), or a command on PATH
      // args: "--port 3000",        // arguments for the script (a string, or a list)
      // cwd: ".",                   // working directory, relative to this file
      // interpreter: "node",        // "none" runs the script directly
      // instances: 2,               // cluster mode: pmsd-app@0.service, pmsd-app@1.service, ...
      // port: 3000,                 // cluster mode: the port systemd listens on, shared by the instances
      // autorestart: true,          // restart when it exits (except stop_exit_codes)
      // max_restarts: 16,           // runs shorter than min_uptime in a row before the app is errored
      // min_uptime: 1000,           // ms
      // restart_delay: 0,           // ms between an exit and the restart
      // kill_timeout: 1600,         // ms between SIGINT and SIGKILL on stop
      // max_memory_restart: "300M", // restart above this much memory (god checks every second)
      // cron_restart: "0 3 * * *",  // restart on a schedule (a systemd timer)
      // watch: false,               // true, or paths: restart when files change
      // watch_delay: 0,             // ms to wait after the last change
      // out_file: "out.log",        // stdout to a file instead of the journal
      // error_file: "err.log",      // stderr to a file (the only way to keep it apart from stdout)
      env: {                         // layered over the environment `pmsd start` ran in
        NODE_ENV: "development",
      },
      env_production: {              // `pmsd start ecosystem.config.js --env production`
        NODE_ENV: "production",
      },
    },
  ],
};
"""


def write_starter(directory: str, mode: str | None = None) -> str:
    """Write the starter file into `directory`; its path. mode "simple" leaves the comments out."""
    if mode not in (None, "simple"):
        raise UsageError(f"unknown ecosystem mode {mode!r}", "use `pmsd ecosystem` or `pmsd ecosystem simple`")
    path = os.path.join(directory, FILE_NAME)
    try:
        with open(path, "x", encoding="utf-8") as file:  # "x": refuse, atomically, to replace a file
            file.write(SIMPLE if mode == "simple" else COMMENTED)
    except FileExistsError:
        raise UsageError(f"{path} already exists; pmsd does not overwrite it",
                         "remove or rename it first, or edit it") from None
    return path
