"""`python -m cloudbuild COMMAND ...`: the tool build steps and people call.

A command is one line here: its name, the "module:function" that runs it, and its help.
"""

import sys

from cloudbuild.cli_common import Command, main

COMMANDS = {
    "names": Command("cloudbuild.names:main", "print every name a build of a branch uses"),
    "plan": Command("cloudbuild.plan:main", "show which pipelines a push fires"),
    "check-yaml": Command("cloudbuild.check_yaml:main", "check that every YAML file parses"),
    "render-openapi": Command("cloudbuild.openapi:render_main", "fill the spec in for a gateway"),
    "validate-openapi": Command("cloudbuild.openapi:validate_main", "check a rendered spec"),
    "env": Command("cloudbuild.env:main", "write a build's names as shell variables"),
    "triggers": Command("cloudbuild.triggers:main", "print the trigger definitions"),
    "bootstrap": Command("cloudbuild.bootstrap:main", "one-time Google Cloud set-up"),
    "fetch-data": Command(
        "cloudbuild.models:fetch_data_main", "download and hash the training data"
    ),
    "train-job": Command("cloudbuild.vertex_job:main", "train this commit's model on Vertex AI"),
    "promote-model": Command("cloudbuild.models:promote_main", "point LATEST at a complete model"),
    "resolve-model": Command(
        "cloudbuild.models:resolve_main", "download the model a branch serves"
    ),
    "experiment": Command(
        "cloudbuild.experiment:main", "check, resolve and publish the A/B experiment"
    ),
    "traffic": Command("cloudbuild.traffic:main", "split Cloud Run traffic by the experiment"),
    "ab-report": Command("cloudbuild.ab_report:main", "analyse an A/B experiment's logs"),
    "preflight": Command("cloudbuild.preflight.session:main", "run a push's pipelines offline"),
}

if __name__ == "__main__":
    sys.exit(main(COMMANDS))
