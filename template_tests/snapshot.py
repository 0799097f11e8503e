"""A committed, tagged copy of the template's working tree.

Copier renders from git, so tests and the demo render from a snapshot of what is on
disk now (uncommitted edits included), never from whatever was last committed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ANSWERS = ROOT / "example-answers.yml"
GIT_IDENTITY = ["-c", "user.name=template-tests", "-c", "user.email=template-tests@localhost"]


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return result.stdout


def tracked_files(root: Path = ROOT) -> list[str]:
    """What git would ship: tracked files plus new ones it does not ignore."""
    out = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    names = {name for name in out.split("\0") if name}
    # The index may still list files deleted from the working tree.
    return sorted(n for n in names if (root / n).is_symlink() or (root / n).exists())


def snapshot(dest: Path, tag: str = "v99.0.0") -> Path:
    """Copy the working tree to `dest` (links kept as links), commit and tag it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in tracked_files():
        source, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    git(dest, "init", "--quiet", "--initial-branch=main")
    git(dest, "add", "--all")
    git(dest, "commit", "--quiet", "--message", f"snapshot {tag}")
    git(dest, "tag", tag)
    return dest


def example_answers() -> dict:
    return yaml.safe_load(EXAMPLE_ANSWERS.read_text())
