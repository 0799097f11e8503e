"""What preflight runs in place of `/kaniko/executor`: check, snapshot and record.

Images are not built offline. Instead this checks what kaniko would trip over first
(the Dockerfile exists; every local source a COPY or ADD names exists in the
context; a destination is given) and records the image as Artifact Registry would
hold it: its name, labels, cache settings and a snapshot of the context, so a
Cloud Run revision of that image can later run the very code and model it would
hold. Records live in PREFLIGHT_IMAGES (one JSON file and one folder per image).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

INSTRUCTION = re.compile(r"^\s*(COPY|ADD)\s+(.*)$", re.IGNORECASE)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="/kaniko/executor (preflight recorder)")
    parser.add_argument("--context", "-c", default="/workspace/")
    parser.add_argument("--dockerfile", "-f", default="Dockerfile")
    parser.add_argument("--destination", "-d", action="append", default=[])
    parser.add_argument("--cache", default="false")
    parser.add_argument("--cache-repo", default="")
    parser.add_argument("--cache-ttl", default="")
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--build-arg", action="append", default=[])
    return parser.parse_args(argv)


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """The local sources of every COPY/ADD (not `--from` stage copies)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    sources = []
    for line in text.splitlines():
        match = INSTRUCTION.match(line)
        if not match:
            continue
        words = shlex.split(match[2])
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        if words and words[0].startswith("["):
            words = json.loads(match[2][match[2].index("[") :])
        sources.extend(words[:-1])
    return sources


def problems(context: Path, dockerfile: Path, destinations: list[str]) -> list[str]:
    found = []
    if not context.is_dir():
        return [f"context {context} is not a folder"]
    if not dockerfile.is_file():
        return [f"Dockerfile {dockerfile} does not exist"]
    if not destinations:
        found.append("no --destination: kaniko would have nowhere to push")
    for source in dockerfile_sources(dockerfile):
        if not list(context.glob(source.rstrip("/") or ".")):
            found.append(
                f"{dockerfile.name}: COPY source {source!r} is not in the context {context}"
            )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    context = Path(args.context.removeprefix("dir://"))
    dockerfile = Path(args.dockerfile)
    if not dockerfile.is_absolute():
        # kaniko looks relative to its working directory first, then the context (G8).
        dockerfile = dockerfile if dockerfile.exists() else context / dockerfile
    found = problems(context, dockerfile, args.destination)
    if found:
        for problem in found:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    store = Path(os.environ["PREFLIGHT_IMAGES"])
    labels = dict(label.partition("=")[::2] for label in args.label)
    for destination in args.destination:
        key = hashlib.sha256(destination.encode()).hexdigest()[:16]
        snapshot = store / key
        if snapshot.exists():
            shutil.rmtree(snapshot)
        shutil.copytree(context, snapshot / "context", ignore=shutil.ignore_patterns("__pycache__"))
        record = {
            "image": destination,
            "dockerfile": str(dockerfile.relative_to(context)),
            "labels": labels,
            "cache": args.cache == "true",
            "cache_repo": args.cache_repo,
            "cache_ttl": args.cache_ttl,
            "snapshot": str(snapshot / "context"),
        }
        (store / f"{key}.json").write_text(json.dumps(record, indent=2))
        print(f"recorded {destination} (context {context}, {record['dockerfile']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
