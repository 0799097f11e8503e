"""Virtualenvs made from a lock file, as an image would install it, re-used while the
lock is unchanged.

Each server runs with exactly its own locked packages: MLServer from its lock, our
API from api/requirements.txt, the lock its image installs. Bytecode is compiled at
install time as `pip install` does in the API's Dockerfile, so start-up is measured
as the image would start, not with the dev environment's extra packages (pytest,
for one, which scikit-learn's helpers import when it is there).
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from template_tests.bench.errors import BenchError

STAMP = ".requirements.sha256"
INSTALL_TIMEOUT_S = 900


def ensure(venv: Path, requirements: Path, label: str) -> Path:
    """The venv's bin folder, installed from `requirements` unless it already is."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text().strip() == digest:
        return venv / "bin"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise BenchError(f"uv is needed to install {label}; run `make setup`")
    shutil.rmtree(venv, ignore_errors=True)
    print(f"installing {label} into {venv} (once per lock file)", flush=True)
    for command in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", "--compile-bytecode"]
        + ["--python", str(venv / "bin" / "python"), "--requirement", str(requirements)],
    ):
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
        if completed.returncode != 0:
            raise BenchError(f"installing {label} failed:\n{completed.stderr.strip()}")
    # Written last: an interrupted install has no stamp and is redone.
    stamp.write_text(digest + "\n")
    return venv / "bin"
