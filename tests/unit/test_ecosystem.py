from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pmsd.definition.ecosystem import DEPLOY_ENV, is_ecosystem_file, load_apps
from pmsd.errors import ExitStatus, UsageError

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

TWO_APPS = [{"name": "api", "script": "api.js", "env": {"PORT": 3000}}, {"name": "worker", "script": "w.py"}]


def _write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _usage_error(path: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        load_apps(path)
    assert caught.value.status == ExitStatus.USAGE
    return caught.value


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("name", ["ecosystem.json", "ecosystem.config.json", "apps.JSON"])
def test_json_apps(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, '{"apps": [{"name": "api", "script": "api.js", "env": {"PORT": 3000}},'
                                  ' {"name": "worker", "script": "w.py"}]}')
    assert load_apps(path) == TWO_APPS


@pytest.mark.parametrize("name", ["ecosystem.yaml", "ecosystem.yml"])
def test_yaml_apps(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, "apps:\n  - name: api\n    script: api.js\n    env:\n      PORT: 3000\n"
                                  "  - name: worker\n    script: w.py\n")
    assert load_apps(path) == TWO_APPS


def test_toml_apps(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.toml", '[[apps]]\nname = "api"\nscript = "api.js"\nenv = { PORT = 3000 }\n'
                                              '\n[[apps]]\nname = "worker"\nscript = "w.py"\n')
    assert load_apps(path) == TWO_APPS


def test_bare_app(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.json", '{"name": "api", "script": "api.js"}')
    assert load_apps(path) == [{"name": "api", "script": "api.js"}]


def test_bare_app_in_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "app.toml", 'name = "api"\nscript = "api.js"\n')
    assert load_apps(path) == [{"name": "api", "script": "api.js"}]


def test_bare_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "apps.yaml", "- script: a.py\n- script: b.py\n")
    assert load_apps(path) == [{"script": "a.py"}, {"script": "b.py"}]


def test_unicode_content(tmp_path: Path) -> None:
    path = _write(tmp_path, "apps.json", '[{"name": "日本 🚀", "script": "é.py"}]')
    assert load_apps(path) == [{"name": "日本 🚀", "script": "é.py"}]


# ------------------------------------------------------------------------------------------ JavaScript


@needs_node
def test_config_js(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.config.js", """
const port = 3000;
module.exports = {
  apps: [
    { name: 'api', script: 'api.js', env: { PORT: port } },
    { name: 'worker', script: 'w.py', ignored: undefined, fn() {} },
  ],
};
""")
    assert load_apps(path) == TWO_APPS


@needs_node
def test_config_js_may_require_relative_files(tmp_path: Path) -> None:
    _write(tmp_path, "shared.js", "module.exports = { script: 'w.py' };\n")
    path = _write(tmp_path, "ecosystem.config.js",
                  "module.exports = [{ name: 'worker', ...require('./shared') }];\n")
    assert load_apps(path) == [{"name": "worker", "script": "w.py"}]


@needs_node
def test_config_cjs_bare_app(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.config.cjs", "module.exports = { name: 'api', script: 'api.js' };\n")
    assert load_apps(path) == [{"name": "api", "script": "api.js"}]


@needs_node
def test_config_mjs_default_export(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.config.mjs", "export default { apps: [{ name: 'api', script: 'api.js' }] };\n")
    assert load_apps(path) == [{"name": "api", "script": "api.js"}]


@needs_node
def test_config_js_that_throws(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.config.js", "throw new Error('boom from the config');\n")
    error = _usage_error(path)
    assert path in error.message
    assert "node failed" in error.message
    assert "boom from the config" in error.message


@needs_node
def test_config_js_with_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.config.js", "module.exports = { apps: [ };\n")
    error = _usage_error(path)
    assert path in error.message
    assert "SyntaxError" in error.message


@needs_node
def test_config_js_exporting_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.config.js", "// nothing exported\n")
    # module.exports is {}: read as one app without options, which build_spec rejects (no script).
    assert load_apps(path) == [{}]


def test_config_js_without_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pmsd.definition.ecosystem.shutil.which", lambda *args, **kwargs: None)
    path = _write(tmp_path, "ecosystem.config.js", "module.exports = { apps: [] };\n")
    error = _usage_error(path)
    assert path in error.message
    assert "needs node" in error.message
    assert error.hint is not None and "JSON, YAML or TOML" in error.hint


# ------------------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.json")
    error = _usage_error(path)
    assert "not found" in error.message and path in error.message


@needs_node
def test_broken_json_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.json", '{\n  "apps": [\n    {"name": "api" "x"}\n  ]\n}\n')
    error = _usage_error(path)
    assert error.message == (f"{path}:3: neither JSON nor a JavaScript expression (as PM2 reads .json files): "
                             "SyntaxError: Unexpected string")


def test_broken_json_without_node_names_file_line_and_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    path = _write(tmp_path, "ecosystem.json", '{\n  "apps": [\n    {"name": "api",}\n  ]\n}\n')
    error = _usage_error(path)
    assert error.message.startswith(f"{path}:3:") and "invalid JSON" in error.message
    assert error.hint is not None and "JavaScript" in error.hint


@needs_node
def test_json_that_is_javascript_is_evaluated_as_pm2_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMSD_TEST_PORT", "3000")
    path = _write(tmp_path, "ecosystem.json", "// comment\n{apps: [{name: 'api', script: 'api.js', "
                                              "env: {PORT: Number(process.env.PMSD_TEST_PORT)}},\n"
                                              "  {name: 'worker', script: 'w' + '.py',}]}\n")
    assert load_apps(path) == TWO_APPS


def test_pm2_key_and_single_app_under_apps(tmp_path: Path) -> None:
    assert load_apps(_write(tmp_path, "a.json", '{"pm2": [{"name": "api"}]}')) == [{"name": "api"}]
    assert load_apps(_write(tmp_path, "b.json", '{"apps": {"name": "api"}}')) == [{"name": "api"}]
    # apps wins over pm2, as in PM2
    assert load_apps(_write(tmp_path, "c.json", '{"apps": [{"name": "a"}], "pm2": [{"name": "b"}]}')) == [
        {"name": "a"}]


def test_deploy_envs_travel_with_each_app(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.json", '{"apps": [{"name": "api"}], "deploy": {"production": {"env": {"A": "1"}}, '
                                      '"staging": {"host": "x"}}}')
    assert load_apps(path) == [{"name": "api", DEPLOY_ENV: {"production": {"A": "1"}}}]


def test_non_utf8_json(tmp_path: Path) -> None:
    path = tmp_path / "ecosystem.json"
    path.write_bytes(b'{"name": "\xff"}')
    error = _usage_error(str(path))
    assert str(path) in error.message


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.yaml", "apps:\n  - name: api\n    script: [unclosed\n  - name: b\n")
    error = _usage_error(path)
    assert error.message.startswith(f"{path}:")
    assert "invalid YAML" in error.message
    line = int(error.message[len(path) + 1:].split(":", 1)[0])
    assert line in (3, 4, 5)


def test_yaml_tab_indentation_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.yml", "apps:\n  - name: api\n\tscript: x\n")
    error = _usage_error(path)
    assert error.message.startswith(f"{path}:3:")


def test_broken_toml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.toml", '[[apps]]\nname = "api"\nscript = \n')
    error = _usage_error(path)
    assert path in error.message
    assert "invalid TOML" in error.message
    assert "line 3" in error.message


@pytest.mark.parametrize("text", ['{"apps": []}', "[]"])
def test_no_apps(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "ecosystem.json", text)
    error = _usage_error(path)
    assert path in error.message and "declares no apps" in error.message


def test_empty_yaml_document(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.yaml", "# only a comment\n")
    error = _usage_error(path)
    assert path in error.message


@pytest.mark.parametrize("text", ['"just a string"', "42", "null"])
def test_document_of_the_wrong_shape(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "ecosystem.json", text)
    error = _usage_error(path)
    assert "expected {apps: [...]}" in error.message


def test_apps_must_be_a_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "ecosystem.json", '{"apps": "api"}')
    error = _usage_error(path)
    assert "'apps' must be a list" in error.message


@pytest.mark.parametrize("text", ['{"apps": [{"script": "a.py"}, "b.py"]}', '[{"script": "a.py"}, ["b.py"]]'])
def test_non_mapping_app(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "ecosystem.json", text)
    error = _usage_error(path)
    assert path in error.message
    assert "app #2 is not a mapping" in error.message


def test_relative_path_is_labelled_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    _write(tmp_path / "conf", "ecosystem.json", "[]")
    with pytest.raises(UsageError, match=r"^conf/ecosystem\.json: declares no apps"):
        load_apps("conf/ecosystem.json")


# ------------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize(("target", "expected"), [
    ("ecosystem.config.js", True), ("ecosystem.config.cjs", True), ("ecosystem.config.mjs", True),
    ("apps.json", True), ("apps.YAML", True), ("apps.yml", True), ("apps.toml", True),
    ("server.js", False), ("main.py", False), ("sleep", False), ("config.js.bak", False),
])
def test_is_ecosystem_file(target: str, expected: bool) -> None:
    assert is_ecosystem_file(target) is expected
