"""Issue 13, the same scenario with PM2 and with pmsd: cluster apps and ecosystem files as users bring them,
unmodified. What a user sees must match, or differ only where README's "Where pmsd differs" says so."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from tests.e2e.helpers import wait_for
from tests.e2e.test_cluster import free_port, serving_pids
from tests.pm2.conftest import Manager
from tests.pm2.test_differential import assert_same, differential

pytestmark = [pytest.mark.pm2, pytest.mark.e2e]

# The port is written in the code: nothing in the definition declares it.
FIXED_PORT_APP = """\
const http = require('http');
http.createServer((req, res) => res.end(`${{process.pid}}\\n`)).listen({port});
"""
IDLE_APP = "setInterval(() => {}, 1000);\n"
# What a Node app sees of itself; plain `node` from the same directory is the reference.
SELF_VIEW_APP = """\
const fs = require('fs');
const view = {
  filename: __filename, paths: module.paths, main: require.main === module, cwd: process.cwd(),
  pwd: process.env.PWD, argv1: process.argv[1],
};
fs.writeFileSync(process.env.VIEW_FILE, JSON.stringify(view));
setInterval(() => {}, 1000);
"""


def _write(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_cluster_app_with_its_port_in_the_code(pm2: Manager, pmsd: Manager, token: str) -> None:
    """`listen(8000)` in the code, `-i 4`: under both, the 4 pids that answer on the port are jlist's 4 pids."""
    def scenario(m: Manager) -> Any:
        port = free_port()
        script = _write(m.cwd, f"w{token}.js", FIXED_PORT_APP.format(port=port))
        code = m.run("start", script, "-i", "4").returncode
        procs = m.wait_all("online", 4)
        listed = {int(p["pid"]) for p in procs}
        return (code, serving_pids(port, 4) == listed, {p["pm2_env"]["exec_mode"] for p in procs},
                [p["pm2_env"]["restart_time"] for p in procs])

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, True, {"cluster_mode"}, [0, 0, 0, 0])
    assert_same(seen)


def test_two_cluster_apps_on_one_port(pm2: Manager, pmsd: Manager, token: str) -> None:
    """Two apps in one file, the same port in their code: under both, all 4 instances answer on it."""
    def scenario(m: Manager) -> Any:
        port = free_port()
        apps = [{"name": f"{app}{token}", "instances": 2,
                 "script": _write(m.cwd, f"{app}{token}.js", FIXED_PORT_APP.format(port=port))} for app in "st"]
        code = m.run("start", _write(m.cwd, f"st{token}.json", json.dumps({"apps": apps}))).returncode
        listed = {int(p["pid"]) for p in m.wait_all("online", 4)}
        return code, len(listed), serving_pids(port, 4) == listed

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, 4, True)
    assert_same(seen)


def test_instance_numbers_through_scale(pm2: Manager, pmsd: Manager, token: str) -> None:
    """Scale down removes the oldest instances; scale up takes the freed NODE_APP_INSTANCE numbers again."""
    def scenario(m: Manager) -> Any:
        script = _write(m.cwd, f"n{token}.js", IDLE_APP)
        m.ok("start", script, "-i", "4")
        m.wait_all("online", 4)
        seen = []
        for count in (2, 4, 3):
            m.ok("scale", f"n{token}", str(count))
            procs = m.wait_all("online", count)
            seen.append([(int(p["pm_id"]), p["pm2_env"]["NODE_APP_INSTANCE"]) for p in procs])
        return seen

    seen = differential(pm2, pmsd, scenario)
    assert seen[0][:2] == [[(2, 2), (3, 3)], [(2, 2), (3, 3), (4, 0), (5, 1)]]
    assert_same(seen)


def test_instance_numbers_through_delete_and_restart(pmsd: Manager, pm2: Manager, token: str) -> None:
    """Deleting one instance by id, restarting, then scaling back up: ids and NODE_APP_INSTANCE as PM2 gives them;
    increment_var grows per instance number."""
    def scenario(m: Manager) -> Any:
        script = _write(m.cwd, f"d{token}.js", IDLE_APP)
        path = _write(m.cwd, f"d{token}.json", json.dumps({"apps": [
            {"name": f"d{token}", "script": script, "instances": 3, "increment_var": "WORKER_PORT",
             "env": {"WORKER_PORT": 7000}}]}))
        m.ok("start", path)
        m.wait_all("online", 3)
        m.ok("delete", "1")
        def numbers(count: int) -> list[tuple[int, int, str]]:
            # PM2 keeps an env value's JSON type (7000); pmsd's env is text, as the app sees it
            return sorted((int(p["pm_id"]), int(p["pm2_env"]["NODE_APP_INSTANCE"]),
                           str(p["pm2_env"]["env"].get("WORKER_PORT"))) for p in m.wait_all("online", count))

        seen = [numbers(2)]
        m.ok("restart", f"d{token}")
        seen.append(numbers(2))
        m.ok("scale", f"d{token}", "3")
        seen.append(numbers(3))
        return seen

    seen = differential(pm2, pmsd, scenario)
    assert seen[0][2] == [(0, 0, "7000"), (2, 2, "7002"), (3, 1, "7003")]  # increment_var: highest + 1, as PM2
    assert_same(seen)


def test_instances_of_a_python_app_are_fork_mode(pm2: Manager, pmsd: Manager, token: str) -> None:
    def scenario(m: Manager) -> Any:
        m.ok("start", m.script(f"p{token}"), "--interpreter", "python3", "-i", "2")
        procs = m.wait_all("online", 2)
        return [(p["name"], int(p["pm_id"]), p["pm2_env"]["exec_mode"], p["pm2_env"]["NODE_APP_INSTANCE"])
                for p in procs]

    seen = differential(pm2, pmsd, scenario)
    assert {mode for _, _, mode, _ in seen[0]} == {"fork_mode"}
    assert_same(seen)


def test_wait_ready_without_a_ready_message(pm2: Manager, pmsd: Manager, token: str) -> None:
    """No process.send('ready'): `start` waits listen_timeout, then the app is online, not failed."""
    def scenario(m: Manager) -> Any:
        script = _write(m.cwd, f"r{token}.js", IDLE_APP)
        started = time.monotonic()
        code = m.run("start", script, "--wait-ready", "--listen-timeout", "2000").returncode
        waited = time.monotonic() - started
        proc = m.wait_status(f"r{token}", "online")
        return code, waited >= 1.9, proc["pm2_env"]["status"], proc["pm2_env"]["restart_time"]

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, True, "online", 0)
    assert_same(seen)


def test_the_app_sees_itself_as_under_plain_node(pm2: Manager, pmsd: Manager, token: str) -> None:
    """__filename, module.paths, require.main, cwd, PWD and argv[1] as plain `node script.js` from its cwd."""
    def scenario(m: Manager) -> Any:
        app_dir = os.path.join(m.cwd, "app")
        os.makedirs(app_dir, exist_ok=True)
        script = _write(app_dir, f"v{token}.js", SELF_VIEW_APP)
        view_file = os.path.join(m.marker_dir, f"view-{m.kind}.json")
        ecosystem = _write(m.cwd, f"v{token}.json", json.dumps({"apps": [
            {"name": f"v{token}", "script": script, "cwd": app_dir, "env": {"VIEW_FILE": view_file}}]}))
        m.ok("start", ecosystem)
        m.wait_status(f"v{token}", "online")
        with open(_wait_file(view_file)) as handle:
            return json.load(handle)

    pm2_view, pmsd_view = differential(pm2, pmsd, scenario)
    assert pmsd_view["filename"].endswith(f"v{token}.js") and pmsd_view["main"] is True
    assert pmsd_view["cwd"] == pmsd_view["pwd"] == os.path.dirname(pmsd_view["filename"])
    # process.argv[1] is the script, as under plain node; under PM2 it is PM2's ProcessContainerFork.js.
    assert pmsd_view["argv1"] == pmsd_view["filename"]
    assert pm2_view.pop("argv1").endswith("ProcessContainerFork.js")
    pmsd_view.pop("argv1")
    # The two work directories differ; everything relative to them must not.
    assert _relative(pmsd_view, pmsd) == _relative(pm2_view, pm2)


def _relative(view: dict[str, Any], m: Manager) -> dict[str, Any]:
    relative: dict[str, Any] = json.loads(json.dumps(view).replace(m.cwd, "<cwd>"))
    return relative


def _wait_file(path: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written within {timeout} s")
        time.sleep(0.05)
    time.sleep(0.05)  # written with one writeFileSync; let it finish
    return path


def test_ecosystem_as_pm2_reads_it(pm2: Manager, pmsd: Manager, token: str) -> None:
    """A file PM2 takes as it is: the `pm2` key, `exec` for script, camelCase keys, object env values."""
    def scenario(m: Manager) -> Any:
        app = {"name": f"e{token}", "exec": m.script(f"e{token}"), "interpreter": "python3",
               "maxMemoryRestart": "200M", "env": {"OBJ": {"a": 1}, "NUM": 5, "FLAG": True}}
        path = _write(m.cwd, f"e{token}.json", json.dumps({"pm2": [app]}))
        code = m.run("start", path).returncode
        m.wait_status(f"e{token}", "online")
        env = m.wait_markers(1)[-1]["env"]
        return code, env.get("OBJ"), env.get("NUM"), env.get("FLAG")

    seen = differential(pm2, pmsd, scenario)
    assert seen[0][0] == 0
    assert_same(seen)


# A Node app that writes down the messages it gets and exits on 'shutdown'.
SHUTDOWN_APP = """\
const fs = require('fs');
process.on('message', (message) => {
  fs.appendFileSync(process.env.SEEN_FILE, `message ${message}\\n`);
  if (message === 'shutdown') process.exit(0);
});
process.on('SIGINT', () => { fs.appendFileSync(process.env.SEEN_FILE, 'SIGINT\\n'); process.exit(0); });
fs.appendFileSync(process.env.SEEN_FILE, 'up\\n');
setInterval(() => {}, 1000);
"""


def test_shutdown_with_message(pm2: Manager, pmsd: Manager, token: str) -> None:
    """shutdown_with_message: `stop` reaches the app as PM2's 'shutdown' message. Under PM2 that is all it gets;
    under pmsd the app's own SIGINT listener runs after the message (README, the Node preload's comment)."""
    def scenario(m: Manager) -> Any:
        seen_file = os.path.join(m.marker_dir, "seen.txt")
        script = _write(m.cwd, f"m{token}.js", SHUTDOWN_APP)
        path = _write(m.cwd, f"m{token}.json", json.dumps({"apps": [
            {"name": f"m{token}", "script": script, "shutdown_with_message": True, "env": {"SEEN_FILE": seen_file}}]}))
        m.ok("start", path)
        m.wait_status(f"m{token}", "online")
        _wait_file(seen_file)  # the app has its listeners
        m.ok("stop", f"m{token}")
        m.wait_status(f"m{token}", "stopped")
        with open(seen_file) as handle:
            return handle.read().splitlines()[1]

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == "message shutdown"
    assert_same(seen)


def test_ecosystem_json_that_is_javascript_with_deploy_env(pm2: Manager, pmsd: Manager, token: str) -> None:
    """A .json file PM2 evaluates (a comment, unquoted keys), `--env production` with the file's
    deploy.production.env and env_production, append_env_to_name; the app's name and what it sees."""
    def scenario(m: Manager) -> Any:
        text = f"""// written by hand
{{
  apps: [{{
    name: 'j{token}', script: {json.dumps(m.script(f"j{token}"))}, interpreter: 'python3',
    append_env_to_name: true,
    env: {{A: 'env', B: 'env', C: 'env'}},
    env_production: {{C: 'env_production'}},
  }}],
  deploy: {{production: {{env: {{B: 'deploy', C: 'deploy'}}}}}},
}}
"""
        code = m.run("start", _write(m.cwd, f"j{token}.json", text), "--env", "production").returncode
        proc = m.wait_status(f"j{token}-production", "online")
        env = m.wait_markers(1)[-1]["env"]
        return code, proc["name"], env.get("A"), env.get("B"), env.get("C")

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, f"j{token}-production", "env", "deploy", "env_production")
    assert_same(seen)


def test_fork_port_and_null_log_path(pm2: Manager, pmsd: Manager, token: str) -> None:
    """`port` in a fork app sets PORT; "NULL" as a log path writes no file (neither one named NULL)."""
    def scenario(m: Manager) -> Any:
        path = _write(m.cwd, f"f{token}.json", json.dumps({"apps": [
            {"name": f"f{token}", "script": m.script(f"f{token}"), "interpreter": "python3", "port": 4321,
             "out_file": "NULL"}]}))
        code = m.run("start", path).returncode
        m.wait_status(f"f{token}", "online")
        env = m.wait_markers(1)[-1]["env"]
        return code, env.get("PORT"), sorted(name for name in os.listdir(m.cwd) if "NULL" in name.upper())

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, "4321", [])
    assert_same(seen)


def test_pm2_saved_list_moves_over(pm2: Manager, pmsd: Manager, token: str) -> None:
    """`pm2 save`'s dump.pm2, given to `pmsd resurrect --pm2`: the same apps, instances, statuses and env."""
    pm2.ok("start", pm2.script(f"a{token}"), "--interpreter", "python3", "--name", f"a{token}")
    pm2.ok("start", _write(pm2.cwd, f"c{token}.js", IDLE_APP), "-i", "2", "--name", f"c{token}")
    pm2.ok("start", pm2.script(f"s{token}"), "--interpreter", "python3", "--name", f"s{token}")
    pm2.ok("stop", f"s{token}")

    def listed(m: Manager) -> list[tuple[str, str, str]]:
        return sorted((p["name"], p["pm2_env"]["exec_mode"], p["pm2_env"]["status"]) for p in m.jlist())

    expected = sorted([(f"a{token}", "fork_mode", "online"), (f"c{token}", "cluster_mode", "online"),
                       (f"c{token}", "cluster_mode", "online"), (f"s{token}", "fork_mode", "stopped")])
    wait_for(lambda: listed(pm2) == expected or None, 15, "PM2's apps", describe=lambda: str(listed(pm2)))
    pm2.ok("save")
    pmsd.ok("resurrect", "--pm2", os.path.join(pm2.env["PM2_HOME"], "dump.pm2"))
    wait_for(lambda: listed(pmsd) == expected or None, 15, "PM2's apps under pmsd",
             describe=lambda: str(listed(pmsd)))


def test_save_with_no_apps_is_skipped(pm2: Manager, pmsd: Manager) -> None:
    """Issue 14: an empty list is not saved (a crash that lost the apps must not empty the save), exit 0."""
    def scenario(m: Manager) -> Any:
        result = m.run("save")
        return result.returncode, "--force" in result.stdout + result.stderr

    seen = differential(pm2, pmsd, scenario)
    assert seen[0] == (0, True)
    assert_same(seen)
