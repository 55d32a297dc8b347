"""CI runs the SLURM check before the README's test command, and ends with that command."""

import re

from conftest import REPO


def _commands(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_slurm_check_then_ends_with_the_readme_test_command():
    lines = _commands(REPO / ".ci" / "run")
    readme = REPO.joinpath("README.md").read_text()
    setup = re.findall(r"```bash\n(.*?)```", readme.split("## Set-up: two commands")[1].split("\n## ")[0], re.S)
    assert lines[-1] == setup[1].strip()  # nothing after the README's test command
    slurm = [i for i, line in enumerate(lines) if "tests/slurm/run.sh" in line]
    assert slurm and max(slurm) < len(lines) - 1
    # the plugin comes in the project's own pip call, never on its own
    installs = [line for line in lines if "pip install" in line and "slurm" in line]
    assert installs == ['.venv/bin/pip install -q -e ".[test,slurm]"']
    assert "set -euo pipefail" in lines  # a failed SLURM check fails CI

