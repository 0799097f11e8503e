"""What the model reads and predicts: the feature spec and the schema derived from it.

The spec is the one place that names the model's columns. Data validation, the
pipeline and `schema.json` (from which the API builds its request models) all
follow it, so adapting the template to other data starts here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SCHEMA_VERSION = 1

FeatureType = Literal["number", "integer", "category"]
NUMERIC_TYPES: frozenset[str] = frozenset({"number", "integer"})


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    # A nullable feature gets an imputer in the pipeline, so the API may accept a
    # missing value for it; a non-nullable one must be present in every row.
    nullable: bool

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True)
class FeatureSpec:
    target: str
    features: tuple[Feature, ...]

    @property
    def columns(self) -> list[str]:
        """Every column the data must have: the target first, then the features."""
        return [self.target, *(feature.name for feature in self.features)]

    def schema(self, categories: dict[str, list[str]], classes: list[str]) -> dict[str, Any]:
        """The `schema.json` document for a fitted model.

        `categories` holds, per categorical feature, the values the encoder learned,
        in its order; `classes` the target values in the classifier's order.
        """
        entries: list[dict[str, Any]] = []
        for feature in self.features:
            entry: dict[str, Any] = {"name": feature.name, "type": feature.type}
            if not feature.is_numeric:
                entry["categories"] = categories[feature.name]
            entry["nullable"] = feature.nullable
            entries.append(entry)
        return {
            "schema_version": SCHEMA_VERSION,
            "target": self.target,
            "classes": classes,
            "features": entries,
        }


# Palmer penguins. `year` is left out on purpose: it records when the bird was
# sampled (2007-2009), not anything about the bird, so a model using it would ask
# callers for a value it can only extrapolate from. Measurements are "number" even
# where the file rounds them to whole units, since they are continuous quantities.
# They are nullable because field records miss some (two birds have none); `sex` is
# nullable because eleven birds were not sexed. `island` is always recorded, so it
# is required.
PENGUINS = FeatureSpec(
    target="species",
    features=(
        Feature("bill_length_mm", "number", nullable=True),
        Feature("bill_depth_mm", "number", nullable=True),
        Feature("flipper_length_mm", "number", nullable=True),
        Feature("body_mass_g", "number", nullable=True),
        Feature("island", "category", nullable=False),
        Feature("sex", "category", nullable=True),
    ),
)
