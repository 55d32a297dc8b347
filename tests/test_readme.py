"""The README's two set-up commands exist, and CI runs the test command verbatim."""

import re

from conftest import REPO


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _setup_commands() -> list[str]:
    section = REPO.joinpath("README.md").read_text().split("## Set-up: two commands")[1].split("\n## ")[0]
    return [block.strip() for block in _bash_blocks(section)]


def test_readme_has_exactly_two_setup_commands():
    commands = _setup_commands()
    assert len(commands) == 2
    demo, tests = commands
    assert "snakemake --cores all" in demo and "pip install" in demo
    assert "pytest" in tests and "pip install" in tests


def test_ci_runs_the_readme_test_command():
    ci = REPO.joinpath(".ci", "run").read_text().splitlines()
    assert _setup_commands()[1] in ci
