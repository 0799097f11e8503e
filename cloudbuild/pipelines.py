"""The project's three pipelines and the pushes that start them, defined once.

`plan` reads this to show what a push would fire. The trigger file for
`gcloud builds triggers import` is made from it field for field: build_config is the
trigger's `filename`, included_files / ignored_files its `includedFiles` / `ignoredFiles`,
branch_pattern its `push.branch`. Each pipeline runs as the service account of the same
name (cloudbuild/config.py, SERVICE_ACCOUNTS).
"""

from __future__ import annotations

from dataclasses import dataclass

# Every branch builds: a feature branch gets its own model and a tagged API revision.
# Cloud Build searches the branch with this RE2 pattern, unanchored (gcp-reference G6).
EVERY_BRANCH = ".*"

# A change to documentation alone rebuilds nothing: no pipeline packages or reads a
# Markdown file. Cloud Build drops ignored files before it looks at includedFiles, so a
# commit touching code as well still fires. Only *.md: a wider net such as *.txt would
# also swallow requirements.txt, whose changes must rebuild.
DOCUMENTATION = ("**/*.md",)


def _tree(folder: str) -> tuple[str, str]:
    # Cloud Build documents "**" without saying exactly what it matches, and a 2026 fix in
    # GoogleCloudPlatform/agent-starter-pack (PR 798) found "dir/**" not firing where
    # "dir/**/*" did. Listing both costs nothing: plan.py treats them alike.
    return (f"{folder}/**", f"{folder}/**/*")


@dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    build_config: str
    included_files: tuple[str, ...]
    ignored_files: tuple[str, ...]
    branch_pattern: str
    # Pipelines this one starts, for the same branch, after it succeeds.
    chains: tuple[str, ...] = ()


PIPELINES = (
    Pipeline(
        name="training",
        description="Train on Vertex AI, store the model under the branch, then run api",
        build_config="cloudbuild/training.yaml",
        included_files=(*_tree("training"), "cloudbuild/training.yaml"),
        ignored_files=DOCUMENTATION,
        branch_pattern=EVERY_BRANCH,
        # Serving must pick up the model this run made; a push touching training/ and api/
        # also fires api directly, which may still package the previous model (G27).
        chains=("api",),
    ),
    Pipeline(
        name="api",
        description="Build the API image with the branch's model and deploy it to Cloud Run",
        build_config="cloudbuild/api.yaml",
        included_files=(*_tree("api"), "cloudbuild/api.yaml"),
        ignored_files=DOCUMENTATION,
        branch_pattern=EVERY_BRANCH,
    ),
    Pipeline(
        name="auth",
        description="Publish the OpenAPI spec to Cloud Endpoints and deploy the ESPv2 gateway",
        build_config="cloudbuild/auth.yaml",
        included_files=(*_tree("auth"), *_tree("openapi"), "cloudbuild/auth.yaml"),
        # The website's A/B client lives beside the experiment file but runs on the
        # site: changing it redeploys nothing.
        ignored_files=(*DOCUMENTATION, *_tree("auth/abclient")),
        branch_pattern=EVERY_BRANCH,
    ),
)
