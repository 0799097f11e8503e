from __future__ import annotations

from pathlib import Path

import copier
import pytest

from template_tests.snapshot import example_answers, snapshot


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    return snapshot(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def render(template_repo, tmp_path_factory):
    """Render the template with the example answers overridden by `changes`."""

    def _render(changes: dict | None = None, name: str = "project") -> Path:
        dest = tmp_path_factory.mktemp(name)
        copier.run_copy(
            str(template_repo),
            dest,
            data={**example_answers(), **(changes or {})},
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
        )
        return dest

    return _render


@pytest.fixture(scope="session")
def example_project(render) -> Path:
    return render(name="example")
