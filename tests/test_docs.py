"""Meta-tests: every public command, hook and docs page is documented and builds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from iris_transport import hookspecs
from iris_transport.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def documentation_text() -> str:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def command_paths(group: click.Group, prefix: str = "") -> list[str]:
    paths = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        path = f"{prefix}{name}"
        paths.append(path)
        if isinstance(command, click.Group):
            paths += command_paths(command, prefix=f"{path} ")
    return paths


@pytest.mark.parametrize("command", command_paths(main))
def test_command_is_documented(command: str) -> None:
    assert f"iris-transport {command}" in documentation_text(), (
        f"`iris-transport {command}` appears on no page of docs/ or in README.md; document it"
    )


@pytest.mark.parametrize("hook", [name for name in dir(hookspecs) if name.startswith("iris_transport_")])
def test_hook_is_documented(hook: str) -> None:
    assert hook in (DOCS / "plugins.md").read_text(encoding="utf-8"), f"hook {hook} is not described in docs/plugins.md"


def test_nav_pages_exist() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [page for page in re.findall(r":\s*([\w./-]+\.md)\s*$", nav, flags=re.MULTILINE) if not (DOCS / page).is_file()]
    assert missing == [], f"mkdocs.yml names pages that docs/ does not have: {missing}"


def test_readme_has_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "scripts/demo" in readme
    assert "scripts/test" in readme
    assert (ROOT / "scripts" / "demo").is_file()
    assert (ROOT / "scripts" / "test").is_file()


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path: Path) -> None:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs is not installed; install it with: pip install -e '.[test]'")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
