"""The local stand-in for each builder image a step names.

| builder image     | stands in                                                      |
|-------------------|----------------------------------------------------------------|
| `_PYTHON_IMAGE`   | this machine's Python (same minor version as the image)        |
| `_GCLOUD_IMAGE`   | the real `gcloud` CLI installed here, pointed at the double    |
| `_KANIKO_IMAGE`   | a recorder in place of `/kaniko/executor` (kaniko.py): it      |
|                   | checks the Dockerfile and context and records the image        |

A step's script runs as a file, as in the container; the container paths it names
are rewritten to their stand-ins: `/workspace` to the local workspace,
`/kaniko/executor` to the recorder, `/busybox/sh` to `/bin/sh`.
"""

from __future__ import annotations

import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbuild import substitutions

DEFAULT_SHEBANG = "#!/bin/sh\n"  # Cloud Build runs a script without one under /bin/sh


@dataclass
class Builder:
    """How one builder image's steps run here."""

    name: str
    env: dict[str, str] = field(default_factory=dict)  # wins over the step's own env
    rewrites: dict[str, str] = field(default_factory=dict)

    def command(self, step: dict[str, Any], values: dict[str, str], workspace: Path) -> list[str]:
        if "script" in step:
            return [str(self._script_file(step, workspace))]
        args = [substitutions.substitute(a, values) for a in step.get("args", [])]
        entrypoint = substitutions.substitute(step.get("entrypoint", ""), values)
        command = [entrypoint, *args] if entrypoint else args
        return [self._rewrite(word, workspace) for word in command]

    def _rewrite(self, text: str, workspace: Path) -> str:
        mapping = {"/workspace": str(workspace), **self.rewrites}
        pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
        return pattern.sub(lambda m: mapping[m[0]], text)

    def _script_file(self, step: dict[str, Any], workspace: Path) -> Path:
        script = step["script"]
        if not script.startswith("#!"):
            script = DEFAULT_SHEBANG + script
        folder = workspace.parent / "steps"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{step.get('id', 'step')}.sh"
        path.write_text(self._rewrite(script, workspace))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path


def kaniko_builder(name: str, recorder_env: dict[str, str]) -> Builder:
    recorder = f"{sys.executable} -m cloudbuild.preflight.kaniko"
    return Builder(
        name,
        env=recorder_env,
        rewrites={"/kaniko/executor": recorder, "#!/busybox/sh": "#!/bin/sh"},
    )
