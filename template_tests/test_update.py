"""`copier update` from an earlier release gives the same tree as a fresh copy."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import copier

from template_tests.snapshot import ROOT, example_answers, git, snapshot


def earlier_release(template: Path) -> str:
    """The newest real release tag, or a synthetic older version when none exists yet."""
    tags = subprocess.run(
        ["git", "tag", "--list", "v*", "--sort=-v:refname"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if tags:
        git(template, "fetch", "--quiet", str(ROOT), f"refs/tags/{tags[0]}:refs/tags/{tags[0]}")
        return tags[0]
    # No release yet: an older version that differs in a shipped file and a config value.
    git(template, "checkout", "--quiet", "-b", "older")
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nAn older release's extra line.\n")
    config = template / "template" / "project.yaml.jinja"
    config.write_text(config.read_text().replace("concurrency: 40", "concurrency: 20"))
    git(template, "commit", "--quiet", "--all", "--message", "older")
    git(template, "tag", "v0.0.1")
    git(template, "checkout", "--quiet", "main")
    return "v0.0.1"


def tree_differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=[".git", ".copier-answers.yml"])
    found: list[str] = []

    def walk(c: filecmp.dircmp, prefix: str) -> None:
        found.extend(f"{prefix}{n}" for n in c.left_only + c.right_only + c.diff_files)
        for name, sub in c.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(comparison, "")
    return found


def test_update_from_an_earlier_release_matches_a_fresh_copy(tmp_path):
    template = snapshot(tmp_path / "template")
    old = earlier_release(template)
    project = tmp_path / "updated"
    copier.run_copy(
        str(template), project, data=example_answers(), defaults=True, vcs_ref=old, quiet=True
    )
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "generated")
    copier.run_update(project, defaults=True, overwrite=True, vcs_ref="v99.0.0", quiet=True)

    fresh = tmp_path / "fresh"
    copier.run_copy(
        str(template), fresh, data=example_answers(), defaults=True, vcs_ref="v99.0.0", quiet=True
    )
    assert tree_differences(project, fresh) == []
    assert "_commit: v99.0.0" in (project / ".copier-answers.yml").read_text()
