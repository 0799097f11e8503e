"""Cloud Build's substitution rules, as the service applies them to a build.

One implementation for three users: the Cloud Build double (which refuses what the
service refuses), the tests that keep the configs' substitutions consistent, and
preflight (which runs a build the way a trigger would).

The rules (gcp-reference §1.6):
- a reference is `$KEY` or `${KEY}` with KEY matching `[A-Z_][A-Z0-9_]*`; `$$` is a
  literal `$`; anything else after `$` (`$foo`, `$(cmd)`, `$1`) is left alone;
- substitution applies to step name, args, env, dir, entrypoint and to the build's
  images, tags, logsBucket and artifacts; never to `script`, whose steps receive the
  values as environment variables when automapSubstitutions is on;
- a referenced key that is neither built-in nor user-defined (`_`-prefixed) is always
  fatal; user keys must match `^_[A-Z0-9_]+$`;
- under MUST_MATCH an unused supplied key or an unsupplied referenced one is fatal;
  triggered builds are always ALLOW_LOOSE, where a missing one becomes "".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

REFERENCE = re.compile(r"\$(?:\$|\{(?P<braced>[A-Z_][A-Z0-9_]*)\}|(?P<bare>[A-Z_][A-Z0-9_]*))")
USER_KEY = re.compile(r"^_[A-Z0-9_]+$")

BUILT_INS = frozenset(
    {
        "PROJECT_ID",
        "PROJECT_NUMBER",
        "BUILD_ID",
        "LOCATION",
        "TRIGGER_NAME",
        "TRIGGER_BUILD_CONFIG_PATH",
        "COMMIT_SHA",
        "REVISION_ID",
        "SHORT_SHA",
        "REPO_NAME",
        "REPO_FULL_NAME",
        "BRANCH_NAME",
        "TAG_NAME",
        "REF_NAME",
        "SERVICE_ACCOUNT_EMAIL",
        "SERVICE_ACCOUNT",
    }
)

STEP_FIELDS = ("name", "args", "env", "dir", "entrypoint")
BUILD_FIELDS = ("images", "tags", "logsBucket", "artifacts")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def substituted_strings(build: Mapping[str, Any]) -> Iterator[str]:
    """Every string of the build that Cloud Build substitutes into."""
    for step in build.get("steps", []):
        for field in STEP_FIELDS:
            yield from _strings(step.get(field))
    for field in BUILD_FIELDS:
        yield from _strings(build.get(field))


def references(text: str) -> set[str]:
    return {m["braced"] or m["bare"] for m in REFERENCE.finditer(text) if m[0] != "$$"}


def referenced_keys(build: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for text in substituted_strings(build):
        found |= references(text)
    return found


def script_variables(build: Mapping[str, Any]) -> set[str]:
    """Substitution keys that `script:` steps read as environment variables (automap)."""
    found: set[str] = set()
    for step in build.get("steps", []):
        for match in re.finditer(r"\$\{?(_[A-Z0-9_]+)", step.get("script", "")):
            found.add(match[1])
    return found


def problems(build: Mapping[str, Any], supplied: Mapping[str, str], must_match: bool) -> list[str]:
    """What the service would refuse, in its own words; empty when it would accept."""
    found = []
    for key in sorted(supplied):
        if not USER_KEY.match(key) and key not in BUILT_INS:
            found.append(
                f'substitution key "{key}" does not respect format "^_[A-Z0-9_]+$" '
                "and is not an overridable built-in substitutions"
            )
    used = referenced_keys(build)
    for key in sorted(used):
        if key not in BUILT_INS and not key.startswith("_"):
            found.append(
                "invalid value for 'build.substitutions': "
                f'key in the template "{key}" is not a valid built-in substitution'
            )
    if must_match:
        automapped = script_variables(build) if automap(build) else set()
        for key in sorted(set(supplied) - used - automapped - BUILT_INS):
            found.append(f'key "{key}" in the substitution data is not matched in the template')
        for key in sorted(k for k in used if k.startswith("_") and k not in supplied):
            found.append(f'key in the template "{key}" is not matched in the substitution data')
    return found


def automap(build: Mapping[str, Any]) -> bool:
    return bool(build.get("options", {}).get("automapSubstitutions"))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """One string with the values in; a key without a value becomes "" (ALLOW_LOOSE)."""

    def replace(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        return values.get(match["braced"] or match["bare"], "")

    return REFERENCE.sub(replace, text)
