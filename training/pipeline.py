"""The scikit-learn Pipeline: per-feature preprocessing, then the classifier.

Preprocessing lives inside the Pipeline so that the saved model takes the same raw
columns at serving time as it did in training; nothing has to be re-implemented in
the API.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.features import Feature, FeatureSpec

PREPROCESS = "preprocess"
CLASSIFIER = "classifier"


def build_pipeline(
    spec: FeatureSpec, categories: dict[str, list[str]], *, c: float, max_iter: int, seed: int
) -> Pipeline:
    """An unfitted pipeline for `spec`.

    `categories` fixes each categorical feature's values up front, from all the
    validated rows rather than the training split: a feature's domain says nothing
    about the target, and taking it from the split would make the schema (the API's
    contract) change with the seed, and break evaluation whenever a rare value
    happened to fall only into the test rows.

    Each feature gets its own transformer, named after the column, so the fitted
    encoders can be read back per feature when the schema is written. Columns the
    spec does not name are dropped, so extra fields cannot reach the classifier.
    """
    preprocess = ColumnTransformer(
        [
            (feature.name, _transformer(feature, categories.get(feature.name)), [feature.name])
            for feature in spec.features
        ],
        remainder="drop",
    )
    classifier = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    return Pipeline([(PREPROCESS, preprocess), (CLASSIFIER, classifier)])


def _transformer(feature: Feature, categories: list[str] | None) -> Pipeline:
    if feature.is_numeric:
        steps = [("scale", StandardScaler())]
        fill = "median"
    else:
        # The API refuses unknown categories itself, from schema.json, with a clear
        # client error. The encoder refuses them too rather than encoding them as all
        # zeros, so that a caller who bypasses that check, or sends a missing value
        # the imputer does not recognise (None in an object column instead of NaN),
        # gets an error instead of a quietly wrong prediction.
        steps = [("encode", OneHotEncoder(categories=[categories], handle_unknown="error"))]
        fill = "most_frequent"
    if feature.nullable:
        steps.insert(0, ("impute", SimpleImputer(strategy=fill)))
    return Pipeline(steps)


def learned_categories(pipeline: Pipeline, spec: FeatureSpec) -> dict[str, list[str]]:
    """The categories each categorical feature's encoder learned, in encoder order."""
    fitted = pipeline.named_steps[PREPROCESS].named_transformers_
    return {
        feature.name: [
            str(value) for value in fitted[feature.name].named_steps["encode"].categories_[0]
        ]
        for feature in spec.features
        if not feature.is_numeric
    }


def learned_classes(pipeline: Pipeline) -> list[str]:
    return [str(label) for label in pipeline.classes_]
