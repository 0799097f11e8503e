"""Which pipelines a push fires, decided the way Cloud Build's triggers decide it.

For each pipeline (cloudbuild/pipelines.py) a push fires the trigger when its branch
pattern finds the branch and its file filter passes (gcp-reference §1.7):

1. changed files matching any ignored_files glob are dropped; if none are left, no build;
2. otherwise, with no included_files the build runs;
3. with included_files, it runs if a remaining file matches one of them.

Globs follow Go's `path/filepath.Match`, which Cloud Build extends with `**`. The
translation below is exact for Go's syntax with one exception: after a `*`, Go steps through
bytes, we through characters, which differs only for a pattern that splits a multi-byte
character. `**` is Cloud Build's own and undocumented in detail; here it matches any run of
characters, `/` included, and `**/` at the start of a path segment also matches nothing,
so `training/**/*` covers `training/x.py` and `**/*.md` covers `README.md`.
"""

from __future__ import annotations

import argparse
import enum
import functools
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from cloudbuild.cli_common import PROG, CommandError, add_config_argument, checked, print_json
from cloudbuild.config import Config, load
from cloudbuild.names import check_branch, check_sha, names
from cloudbuild.pipelines import PIPELINES, Pipeline
from cloudbuild.triggers import active_pipelines


class GlobError(ValueError):
    """A glob Go's filepath.Match rejects with ErrBadPattern."""


class ChangedFileError(ValueError):
    """A changed-file path that is not a file path inside the repository."""


class _Star(enum.Enum):
    """The wildcards that match a run of characters; each value is its regular expression."""

    SEGMENT = "[^/]*"  # `*`: a run within one path segment
    ANY = ".*"  # `**` inside a segment: any run, `/` included
    FOLDERS = "(?:.*/)?"  # `**/` starting a segment: zero or more whole folders


def _class_character(pattern: str, i: int) -> tuple[str, int]:
    # Go's getEsc: one possibly-escaped character of a [...] class, and where the next
    # starts; a bare '-' or ']' here, or a class that runs off the end, is malformed.
    if i >= len(pattern) or pattern[i] in "-]":
        raise GlobError(f"malformed character class in {pattern!r}")
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise GlobError(f"malformed character class in {pattern!r}")
    if i + 1 >= len(pattern):
        raise GlobError(f"unclosed character class in {pattern!r}")
    return pattern[i], i + 1


def _character_class(pattern: str, i: int) -> tuple[str, int]:
    """The regex for the class whose '[' is just before `i`, and the index after its ']'."""
    negated = pattern[i : i + 1] == "^"
    if negated:
        i += 1
    ranges = []
    while not (ranges and pattern[i : i + 1] == "]"):
        low, i = _class_character(pattern, i)
        high = low
        if pattern[i] == "-":
            high, i = _class_character(pattern, i + 1)
        ranges.append((low, high))
    # Go accepts a reversed range such as [z-a] and it matches nothing; Python's re refuses
    # it, so such ranges are left out rather than passed on.
    parts = [f"{re.escape(low)}-{re.escape(high)}" for low, high in ranges if low <= high]
    if not parts:
        return ("." if negated else "(?!)"), i + 1
    return f"[{'^' if negated else ''}{''.join(parts)}]", i + 1


def _tokens(pattern: str) -> Iterator[str | _Star]:
    """The pattern as wildcards and one-character regexes (a literal, `?` or a class)."""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            end = i
            while end < len(pattern) and pattern[end] == "*":
                end += 1
            if end - i == 1:
                yield _Star.SEGMENT
            elif (i == 0 or pattern[i - 1] == "/") and pattern[end : end + 1] == "/":
                yield _Star.FOLDERS
                end += 1
            else:
                yield _Star.ANY
            i = end
        elif char == "?":
            yield "[^/]"
            i += 1
        elif char == "[":
            regex, i = _character_class(pattern, i + 1)
            yield regex
        elif char == "\\":
            if i + 1 == len(pattern):
                raise GlobError(f"{pattern!r} ends with an unfinished escape '\\'")
            yield re.escape(pattern[i + 1])
            i += 2
        else:
            yield re.escape(char)
            i += 1


@functools.cache
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regular expression that matches exactly the paths the glob matches."""
    tokens = list(_tokens(pattern))
    regex = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token is not _Star.SEGMENT:
            regex.append(token.value if isinstance(token, _Star) else token)
            continue
        chunk_end = i
        while chunk_end < len(tokens) and not isinstance(tokens[chunk_end], _Star):
            chunk_end += 1
        chunk = "".join(tokens[i:chunk_end])
        if chunk_end == len(tokens):
            regex.append(f"{_Star.SEGMENT.value}{chunk}")
        else:
            # Go commits a `*` to the first place its following chunk matches and never
            # revisits that choice: "*a[^x]*c" does not match "aa/c". A lazy star inside an
            # atomic group makes the same commitment.
            regex.append(f"(?>[^/]*?{chunk})")
        i = chunk_end
    return re.compile("".join(regex), re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    return glob_regex(pattern).fullmatch(path) is not None


def changed_file(path: str) -> str:
    """A changed file as Cloud Build sees it: a repository-relative POSIX path."""
    if not path:
        raise ChangedFileError("a changed-file path is empty")
    if path.startswith("/"):
        raise ChangedFileError(f"{path!r} is absolute; give paths relative to the repository")
    if path.endswith("/"):
        raise ChangedFileError(f"{path!r} is a folder; name the changed files in it")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ChangedFileError(f"{path!r} contains '..'; give paths inside the repository")
    if not parts:
        raise ChangedFileError(f"{path!r} names no file")
    return "/".join(parts)


def fired_files(pipeline: Pipeline, changed: Iterable[str]) -> list[str]:
    """The changed files that fire the pipeline's trigger; empty when it does not fire."""
    kept = [path for path in changed if not _matches_any(pipeline.ignored_files, path)]
    if not pipeline.included_files:
        return kept
    return [path for path in kept if _matches_any(pipeline.included_files, path)]


def _matches_any(globs: Iterable[str], path: str) -> bool:
    return any(glob_match(glob, path) for glob in globs)


def _chained(fired: Sequence[str], branch: str) -> list[dict[str, str]]:
    """The builds fired pipelines start when they succeed, and those that start, in turn."""
    by_name = {pipeline.name: pipeline for pipeline in PIPELINES}
    runs: list[dict[str, str]] = []
    waiting = list(fired)
    while waiting:
        after = waiting.pop(0)
        for target in by_name[after].chains:
            run = {"after": after, "run": target, "branch": branch}
            if run not in runs:
                runs.append(run)
                waiting.append(target)
    return runs


def fired_by_pipeline(
    config: Config, branch: str, changed_files: Iterable[str]
) -> dict[str, list[str]]:
    """Each pipeline a push of `branch` changing `changed_files` fires, with the files that
    fire it, as the triggers' branch patterns and file filters decide.

    Raises ChangedFileError for a path no push can change.
    """
    changed = list(dict.fromkeys(changed_file(path) for path in changed_files))
    files = {}
    for pipeline in active_pipelines(config, PIPELINES):
        if re.search(pipeline.branch_pattern, branch):
            matched = fired_files(pipeline, changed)
            if matched:
                files[pipeline.name] = matched
    return files


def plan(config: Config, branch: str, changed_files: Iterable[str], sha: str) -> dict:
    """What a push of `sha` to `branch` changing `changed_files` starts, and its names.

    Raises BranchNameError, CommitShaError or ChangedFileError for input no build may use.
    """
    build_names = names(config, branch, sha)
    files = fired_by_pipeline(config, branch, changed_files)
    fired = list(files)
    return {
        "branch": branch,
        "triggers": fired,
        "chained": _chained(fired, branch),
        "files": files,
        "names": build_names.as_dict(),
    }


def checked_out_commit(project: Path, command: str = "plan") -> str:
    # Without --sha the build is named after HEAD: what a push from this checkout sends.
    # Uncommitted changes are not in it, which is why the choice is announced on stderr.
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError("pass --sha: git is not installed to find the commit") from None
    if found.returncode != 0:
        raise CommandError(f"pass --sha: {project} has no git commit checked out")
    try:
        sha = check_sha(found.stdout.strip())
    except ValueError as error:
        raise CommandError(f"pass --sha: {error}") from None
    print(f"{command}: no --sha given, naming the build after HEAD ({sha})", file=sys.stderr)
    return sha


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} plan",
        description="Show which pipelines a push fires and the names their builds use, as JSON.",
    )
    parser.add_argument(
        "--branch", required=True, type=checked(check_branch), help="the branch pushed to"
    )
    parser.add_argument(
        "--changed",
        required=True,
        nargs="+",
        type=checked(changed_file),
        metavar="FILE",
        help="the files the push changes, relative to the repository root",
    )
    parser.add_argument(
        "--sha",
        type=checked(check_sha),
        help="the full commit id pushed (default: HEAD of the project's git checkout)",
    )
    add_config_argument(parser)
    args = parser.parse_args(argv)

    config = load(args.config)
    sha = args.sha or checked_out_commit(Path(args.config).resolve().parent)
    print_json(plan(config, args.branch, args.changed, sha))
    return 0
