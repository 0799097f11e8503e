"""A generated project works on its own: fresh `make setup`, `make test`, the demo."""

from __future__ import annotations

import subprocess
import sys

from template_tests import demo
from template_tests.snapshot import ROOT, git


def test_generated_project_sets_up_and_passes_its_own_tests(example_project):
    git(example_project, "init", "--quiet", "--initial-branch=main")
    git(example_project, "add", "--all")
    git(example_project, "commit", "--quiet", "--message", "generated")
    result = subprocess.run(
        ["make", "setup", "test", f"PYTHON={sys.executable}"],
        cwd=example_project,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (example_project / ".venv" / ".installed").exists()


def test_demo_trains_serves_predicts_and_preflights_the_first_push(tmp_path, capfd):
    assert demo.main(["--dest", str(tmp_path / "demo"), "--venv", str(ROOT / ".venv")]) == 0
    out = capfd.readouterr().out
    assert '"predictions"' in out
    assert "Gentoo" in out  # the first sample penguin is a Biscoe Gentoo
    assert "fires: training, api, auth" in out
    assert "prediction via gateway" in out and "-> 200" in out
