"""Copier refuses bad answers with a message that says what is wrong."""

from __future__ import annotations

import copier
import pytest
import yaml

from template_tests.snapshot import ROOT, example_answers

QUESTIONS = {
    k: v
    for k, v in yaml.safe_load((ROOT / "copier.yml").read_text()).items()
    if not k.startswith("_")
}

BAD_ANSWERS = [
    ("project_name", "Penguins", "lowercase"),
    ("project_name", "ab", "3-20 characters"),
    ("project_name", "a-name-that-is-far-too-long", "3-20 characters"),
    ("project_name", "ends-with-", "not end with '-'"),
    ("gcp_project_id", "My_Project", "project ID"),
    ("gcp_project_id", "12345678", "starts with a letter"),
    ("gcp_project_id", "my-google-proj", "may not contain 'google'"),
    ("region", "europe west1", "region"),
    ("region", "mars-north1", "region"),
    ("github_owner", "-bad", "GitHub owner"),
    ("github_repository", "a/b", "repository name"),
    ("production_branch", "main;rm -rf /", "plain branch name"),
    ("production_branch", "$(id)", "plain branch name"),
    ("artifact_registry_repository", "ML_repo", "lowercase"),
    ("bucket", "UPPER", "3-63 characters"),
    ("bucket", "goog-bucket", "goog"),
    ("training_data_uri", "s3://bucket/data.csv", "gs://"),
    ("training_data_uri", "gs://bucket/", "gs://"),
    ("training_machine_type", "big-box", "machine type"),
    ("training_replica_count", 0, "between 1 and 64"),
    ("training_timeout_minutes", 2000, "between 5 and 1380"),
    ("api_max_instances", 0, "between 1 and 1000"),
]


@pytest.mark.parametrize(("question", "value", "message"), BAD_ANSWERS)
def test_bad_answer_is_refused_with_a_reason(template_repo, tmp_path, question, value, message):
    with pytest.raises(ValueError, match=rf"(?s){question}.*{message}"):
        copier.run_copy(
            str(template_repo),
            tmp_path / "out",
            data={**example_answers(), question: value},
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
        )
    assert not (tmp_path / "out" / "project.yaml").exists()


def test_gpu_count_is_checked_only_with_a_gpu(template_repo, tmp_path):
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        copier.run_copy(
            str(template_repo),
            tmp_path / "out",
            data={
                **example_answers(),
                "training_accelerator_type": "NVIDIA_L4",
                "training_accelerator_count": 3,
            },
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
        )


def test_every_question_has_a_type_and_help():
    for name, question in QUESTIONS.items():
        assert {"type", "help"} <= set(question), name


def test_example_answers_answer_every_question():
    answers = example_answers()
    asked_always = {n for n, q in QUESTIONS.items() if "when" not in q}
    assert asked_always <= set(answers)
    assert set(answers) <= set(QUESTIONS)


def test_no_tasks_or_extensions_so_no_trust_is_needed():
    settings = yaml.safe_load((ROOT / "copier.yml").read_text())
    assert not {"_tasks", "_jinja_extensions", "_migrations"} & set(settings)
