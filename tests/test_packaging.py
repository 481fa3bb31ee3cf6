"""The Debian package (packaging/debian, built by packaging/build-deb.sh): its dependencies are exactly what
pmsd/ imports, and the built .deb (when dist/ has one) holds what it should and nothing else.

Fast and without systemd: the source checks parse files; the .deb checks read it with dpkg-deb and are skipped
when no .deb of pyproject.toml's version is in dist/, or when it is older than the code.
"""

from __future__ import annotations

import ast
import glob
import io
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBIAN = os.path.join(ROOT, "packaging", "debian")

# Top-level module imported by pmsd -> the Debian package that provides it (in Debian 12 and 13).
DEBIAN_PACKAGE = {
    "pystemd": "python3-pystemd",
    "psutil": "python3-psutil",
    "jinja2": "python3-jinja2",
    "typer": "python3-typer",
    "sdnotify": "python3-sdnotify",
    "yaml": "python3-yaml",
}
# pyproject.toml's distribution names -> the same Debian packages.
DISTRIBUTION = {"pystemd": "pystemd", "psutil": "psutil", "jinja2": "jinja2", "typer": "typer",
                "sdnotify": "sdnotify", "pyyaml": "yaml"}
# What the package depends on besides the Python modules: the interpreter, the manager pmsd drives, and
# deb-systemd-helper/-invoke for the maintainer scripts (added by debhelper as ${misc:Depends}).
OTHER_DEPENDS: dict[str, str | None] = {"python3": "3.11", "systemd": "252", "init-system-helpers": "1.52"}


def third_party_imports() -> dict[str, str]:
    """Top-level modules imported anywhere in pmsd/ that are neither pmsd's nor the standard library's,
    each with one file importing it."""
    found: dict[str, str] = {}
    for path in glob.glob(os.path.join(ROOT, "pmsd", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "pmsd" and top not in sys.stdlib_module_names:
                    found.setdefault(top, os.path.relpath(path, ROOT))
    return found


def control_paragraphs() -> list[dict[str, str]]:
    """debian/control as deb822 paragraphs (comment lines dropped, continuation lines joined)."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    with open(os.path.join(DEBIAN, "control"), encoding="utf-8") as file:
        for line in file.read().splitlines():
            if line.startswith("#"):
                continue
            if not line.strip():
                if current:
                    paragraphs.append(current)
                current = {}
            elif line[0] in " \t":
                current[key] += " " + line.strip()
            else:
                key, _, value = line.partition(":")
                current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def relations(field: str) -> dict[str, str | None]:
    """A Depends-style field: package name (architecture qualifier dropped) -> its minimum version or None;
    substitution variables (${...}) are left out."""
    out: dict[str, str | None] = {}
    for entry in field.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("${"):
            continue
        match = re.fullmatch(r"([a-z0-9][a-z0-9.+-]*)(?::any)?\s*(?:\(>=\s*([^)\s~]+)~?\))?", entry)
        assert match, f"unexpected relation {entry!r}"
        out[match.group(1)] = match.group(2)
    return out


def binary_control() -> dict[str, str]:
    return next(p for p in control_paragraphs() if p.get("Package") == "pmsd")


def project() -> dict[str, object]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as file:
        data = tomllib.load(file)
    table = data["project"]
    assert isinstance(table, dict)
    return table


def test_every_third_party_import_has_a_debian_package() -> None:
    unknown = {module: where for module, where in third_party_imports().items() if module not in DEBIAN_PACKAGE}
    assert not unknown, (f"pmsd imports {unknown}: add its Debian package to DEBIAN_PACKAGE here, to Depends in "
                         "packaging/debian/control and to pyproject.toml's dependencies")


def test_control_depends_are_exactly_the_imports() -> None:
    depends = relations(binary_control()["Depends"])
    python_modules = {name for name in depends if name.startswith("python3-")}
    assert python_modules == {DEBIAN_PACKAGE[module] for module in third_party_imports()}
    assert depends.get("systemd") == "252"
    assert set(depends) - python_modules == {"systemd"}  # python3 comes from ${python3:Depends}
    assert "${python3:Depends}" in binary_control()["Depends"]
    assert relations(binary_control()["Recommends"]) == {"nodejs": None}


def test_pyproject_dependencies_are_the_same_packages() -> None:
    """dh_python3 turns pyproject.toml's dependencies into ${python3:Depends}: they name the same packages as
    control, except those debian/py3dist-overrides leaves out (listed with no Debian package)."""
    dependencies = project()["dependencies"]
    assert isinstance(dependencies, list)
    names = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in dependencies}
    with open(os.path.join(DEBIAN, "py3dist-overrides"), encoding="utf-8") as file:
        ignored = {line.strip().lower() for line in file if line.strip() and not line.startswith("#")}
    assert all(" " not in name for name in ignored), "py3dist-overrides should only leave requirements out"
    assert ignored <= names, f"py3dist-overrides names requirements pyproject.toml no longer has: {ignored - names}"
    python_modules = {name for name in relations(binary_control()["Depends"]) if name.startswith("python3-")}
    assert {DEBIAN_PACKAGE[DISTRIBUTION[name]] for name in names - ignored} == python_modules
    assert project()["requires-python"] == ">=3.11"
    assert control_paragraphs()[0]["X-Python3-Version"] == ">= 3.11"


def test_gods_units_are_installed_as_plain_files() -> None:
    with open(os.path.join(DEBIAN, "pmsd.install"), encoding="utf-8") as file:
        lines = [line.split() for line in file if line.strip() and not line.startswith("#")]
    assert sorted(lines) == [["units/system/pmsd-god.service", "usr/lib/systemd/system"],
                             ["units/user/pmsd-god.service", "usr/lib/systemd/user"]]
    for source, _ in lines:
        assert os.path.isfile(os.path.join(ROOT, source))
    with open(os.path.join(DEBIAN, "rules"), encoding="utf-8") as file:
        rules = file.read()
    # Not enabled, not started by installing (the upgrade's try-restart is in pmsd.postinst).
    assert re.search(r"^override_dh_installsystemd:\n\n", rules, re.MULTILINE)
    assert "dh_installsystemduser --no-enable" in rules


def test_postinst_only_restarts_gods_that_run() -> None:
    """The system god: try-restart. User gods: `deb-systemd-invoke --user restart`, which restarts a user
    manager's god only where it runs or is enabled. Nothing is started or enabled that was not."""
    with open(os.path.join(DEBIAN, "pmsd.postinst"), encoding="utf-8") as file:
        postinst = file.read()
    code = "\n".join(line for line in postinst.splitlines() if not line.lstrip().startswith("#"))
    assert "[ -d /run/systemd/system ]" in code
    assert "deb-systemd-invoke try-restart pmsd-god.service" in code
    assert "deb-systemd-invoke --user restart pmsd-god.service" in code
    code = code.replace("deb-systemd-invoke --user restart pmsd-god", "")
    assert not re.search(r"(?<![-\w])(start|restart|enable) pmsd-god", code)
    assert "--global" not in code


def test_manpage_has_every_command_and_setting(tmp_path: pathlib.Path) -> None:
    from pmsd.definition.settings import SETTINGS

    result = subprocess.run([sys.executable, os.path.join(ROOT, "packaging", "make-manpage.py"), str(tmp_path)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT, "PYTHONDONTWRITEBYTECODE": "1"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(tmp_path, "pmsd.1"), encoding="utf-8") as file:
        page = file.read()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ECOSYSTEM KEYS", "EXIT STATUS"):
        assert f".SH {section}\n" in page
    for setting in SETTINGS:
        assert f"\\fB{setting.key.replace('-', chr(92) + '-')}\\fR" in page, setting.key
    for command in ("start", "stop", "restart", "reload", "delete", "logs", "save", "resurrect", "startup"):
        assert re.search(rf"^\.SS pmsd {command} ", page, re.MULTILINE), command
    assert os.path.isfile(os.path.join(tmp_path, "pmsd-god.1"))


# --- the built package (bash packaging/build-deb.sh) -------------------------------------------------------


def built_deb() -> str:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("no dpkg-deb")
    path = os.path.join(ROOT, "dist", f"pmsd_{project()['version']}_all.deb")
    if not os.path.isfile(path):
        pytest.skip(f"no {os.path.relpath(path, ROOT)}: bash packaging/build-deb.sh builds it")
    newest = max(os.path.getmtime(p) for p in glob.glob(os.path.join(ROOT, "pmsd", "**", "*"), recursive=True))
    if newest > os.path.getmtime(path):
        pytest.skip(f"{os.path.relpath(path, ROOT)} is older than pmsd/: rebuild it with packaging/build-deb.sh")
    return path


def deb_files(path: str) -> dict[str, bytes | None]:
    """Every path in the package (without the leading ./) -> its content (None for directories and links)."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], capture_output=True, check=True).stdout
    files: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            name = member.name.removeprefix("./").rstrip("/")
            extracted = archive.extractfile(member) if member.isfile() else None
            files[name] = extracted.read() if extracted is not None else None
    return files


def test_deb_depends_exactly_on_debian_packages() -> None:
    path = built_deb()
    fields = subprocess.run(["dpkg-deb", "-f", path, "Depends", "Recommends", "Architecture"], capture_output=True,
                            text=True, check=True).stdout
    parsed = dict(line.split(": ", 1) for line in fields.splitlines())
    depends = relations(parsed["Depends"])
    expected: dict[str, str | None] = {DEBIAN_PACKAGE[module]: None for module in third_party_imports()}
    expected |= OTHER_DEPENDS
    assert depends == expected
    assert relations(parsed["Recommends"]) == {"nodejs": None}
    assert parsed["Architecture"] == "all"


def test_deb_files() -> None:
    files = deb_files(built_deb())
    site = "usr/lib/python3/dist-packages/"
    sources = glob.glob(os.path.join(ROOT, "pmsd", "**", "*.py"), recursive=True)
    sources += glob.glob(os.path.join(ROOT, "pmsd", "definition", "preload", "*.js"))
    modules = {os.path.relpath(p, ROOT) for p in sources}
    shipped = {name.removeprefix(site) for name in files if name.startswith(site + "pmsd/") and files[name] is not None}
    assert shipped == modules
    for script, entry in (("pmsd", "pmsd.cli.main"), ("pmsd-god", "pmsd.god.daemon")):
        content = files[f"usr/bin/{script}"]
        assert content is not None and content.startswith(b"#!/usr/bin/python3\n") and entry.encode() in content
    for template in glob.glob(os.path.join(ROOT, "templates", "*.j2")):
        assert f"usr/share/pmsd/templates/{os.path.basename(template)}" in files
    for scope in ("user", "system"):
        with open(os.path.join(ROOT, "units", scope, "pmsd-god.service"), "rb") as file:
            assert files[f"usr/lib/systemd/{scope}/pmsd-god.service"] == file.read()
    for page in ("pmsd.1.gz", "pmsd-god.1.gz"):
        assert f"usr/share/man/man1/{page}" in files
    allowed = ("usr/bin/pmsd", "usr/bin/pmsd-god", site + "pmsd/", site + "pmsd-", "usr/lib/systemd/system/pmsd-god",
               "usr/lib/systemd/user/pmsd-god", "usr/share/pmsd/", "usr/share/doc/pmsd/",
               "usr/share/man/man1/pmsd", "usr/share/lintian/overrides/pmsd",
               "usr/share/bash-completion/completions/pmsd", "usr/share/zsh/vendor-completions/_pmsd",
               "usr/share/fish/vendor_completions.d/pmsd.fish")
    stray = [name for name, content in files.items() if content is not None and not name.startswith(allowed)]
    assert not stray, f"unexpected files in the package: {stray}"
    assert not [name for name in files if name.startswith("etc/") or ".wants" in name]  # nothing enabled
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]
