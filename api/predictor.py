"""Runs the pipeline on a batch of validated instances.

The pipeline's ColumnTransformer selects columns by name from a pandas DataFrame, and
building that frame is a large share of a small request's cost. So the frame is
built once per batch, column by column, from NumPy arrays whose dtypes are decided
at start-up from the schema (columns.py; never by pandas guessing per request).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from api.columns import column_builder
from api.fast_path import FastPath, NotCompilable, agrees, probe_instances
from api.feature_schema import Feature


class UnscorableInstancesError(ValueError):
    """The model gave non-finite scores, e.g. for values far outside what it was fitted on."""

    def __init__(self, indices: list[int]) -> None:
        super().__init__(f"instances {indices} have no finite scores")
        self.indices = indices


class Predictor:
    """Scores with the fast path (fast_path.py) when it provably equals the pipeline,
    else with the pipeline itself; `scoring` says which, and `fast_path_refused` why not."""

    def __init__(self, pipeline: Any, features: Sequence[Feature]) -> None:
        self._pipeline = pipeline
        by_name = {feature.name: feature for feature in features}
        # The pipeline checks that columns arrive in the order it was fitted with.
        self._columns = [
            (name, column_builder(by_name[name])) for name in pipeline.feature_names_in_
        ]
        self._classes: list[str] = [str(label) for label in pipeline.classes_]
        self._score = self.pipeline_probabilities
        self.scoring = "scikit-learn pipeline"
        try:
            fast = FastPath(pipeline, features)
            self.fast_path_refused = agrees(
                fast, self.pipeline_probabilities, probe_instances(features)
            )
        except NotCompilable as error:
            self.fast_path_refused = str(error)
        if self.fast_path_refused is None:
            self._score = fast.probabilities
            self.scoring = "NumPy fast path, checked against the pipeline"

    def probabilities(self, instances: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """One row of class probabilities per instance; rows are independent of each other,
        which is what lets the batcher score several requests' instances in one call."""
        return self._score(instances)

    def pipeline_probabilities(self, instances: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The scikit-learn pipeline's own answer, from a DataFrame built for it."""
        return self._pipeline.predict_proba(self.frame(instances))

    def frame(self, instances: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """The instances as the DataFrame the pipeline is given, columns in fitted order."""
        return pd.DataFrame(
            {name: build([row[name] for row in instances]) for name, build in self._columns},
            copy=False,
        )

    def answers(self, probabilities: np.ndarray) -> list[dict[str, Any]]:
        """The predictions for rows of probabilities; refuses rows that are not finite."""
        finite = np.isfinite(probabilities).all(axis=1)
        if not finite.all():
            raise UnscorableInstancesError(np.flatnonzero(~finite).tolist())
        # The most probable class is what `predict` returns for scikit-learn's
        # classifiers; taking it from the probabilities saves a second pass.
        best = probabilities.argmax(axis=1).tolist()
        classes = self._classes
        return [
            {"label": classes[index], "probabilities": dict(zip(classes, row, strict=True))}
            for index, row in zip(best, probabilities.tolist(), strict=True)
        ]
