"""Every YAML file in the project parses (build configs, triggers, OpenAPI, config).

A YAML slip in a build config is otherwise found only after a push, in the
Cloud Build console; this runs in `make lint` and the pre-commit hook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from cloudbuild.config import ROOT

SKIPPED_DIRS = {".git", ".venv", "build", "node_modules", "__pycache__", ".pytest_cache"}


def yaml_files(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root).parts
        if SKIPPED_DIRS & set(relative) or not path.is_file():
            continue
        if path.suffix in {".yaml", ".yml"}:
            found.append(path)
    return sorted(found)


def problems(root: Path) -> list[str]:
    found = []
    for path in yaml_files(root):
        try:
            list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as error:
            found.append(f"{path.relative_to(root)}: {error}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloudbuild check-yaml", description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    found = problems(args.root)
    for problem in found:
        print(problem, file=sys.stderr)
    count = len(yaml_files(args.root))
    print(f"{count} YAML files checked, {len(found)} with errors")
    return 1 if found else 0
