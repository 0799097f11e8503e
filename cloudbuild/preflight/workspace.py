"""The `/workspace` a build starts from: the project as it would be pushed.

Cloud Build clones the commit into an empty /workspace for every build. Here the
checkout's working tree stands in for the commit (preflight runs before you push, so
uncommitted edits count): the files git tracks plus the new ones it does not ignore.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path


def project_files(root: Path) -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(
            f"error: {root} is not a git checkout; preflight runs what git would push"
        ) from error
    return sorted(n for n in set(listed) if n and ((root / n).exists() or (root / n).is_symlink()))


def create(root: Path, workspace: Path) -> Path:
    """A fresh copy of the project at `workspace`, with the tool venv made ready."""
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    for name in project_files(root):
        target = workspace / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target, follow_symlinks=False)
    _seed_venv(workspace / ".venv")
    return workspace


def _seed_venv(venv: Path) -> None:
    """A venv that already sees this machine's locked packages.

    The first step of each pipeline makes /workspace/.venv and pip-installs the
    tool's lock file into it. Here the venv exists beforehand and a .pth file lends
    it this environment's site-packages (installed from the same lock files), so
    the step's own `pip install -r ...` runs for real and finds every pin
    satisfied instead of downloading them again for every build.
    """
    subprocess.run(
        [base_python(), "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True
    )
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    lent = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "preflight-lent.pth").write_text("\n".join(lent) + "\n")
    pip = venv / "bin" / "pip"
    pip.write_text(f'#!/bin/sh\nexec {venv}/bin/python -m pip "$@"\n')
    pip.chmod(0o755)


def base_python() -> str:
    """The interpreter behind this venv, so the seeded venv matches the image's Python."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(candidate) if candidate.exists() else sys.executable
