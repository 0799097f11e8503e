"""The builder images every pipeline runs, pinned here and nowhere else.

Build configs name them as substitutions (`name: ${_KANIKO_IMAGE}`); the triggers
made from this module supply the values, so bumping a builder is one edit here
plus `make bootstrap` (which re-imports the triggers).
"""

BUILDERS = {
    # The python base of our own images, so the tool venv made in the first step
    # matches what the images run.
    "_PYTHON_IMAGE": "python:3.11.13-slim-bookworm",
    # The same gcloud release preflight drives locally (google-cloud-cli 528.0.0).
    "_GCLOUD_IMAGE": "gcr.io/google.com/cloudsdktool/google-cloud-cli:528.0.0-slim",
    # GoogleContainerTools/kaniko is archived (2025-06); osscontainertools/kaniko is the
    # maintained fork with public images. The -debug variant carries busybox, which
    # the build steps need to read the names file.
    "_KANIKO_IMAGE": "ghcr.io/osscontainertools/kaniko:v1.28.3-debug",
}
