"""The format of `schema.json`, the feature schema training writes beside the model.

Training owns the file; the API cannot import the training package (its image is
built from `api/` alone), so this module states the same format once more and checks
every model folder against it at start-up. `schema_version` is how the format
changes: a reader meeting a version it does not know refuses the folder.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class NumberFeature(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1)
    type: Literal["number"]
    nullable: bool


class IntegerFeature(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1)
    type: Literal["integer"]
    nullable: bool


class CategoryFeature(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1)
    type: Literal["category"]
    categories: tuple[str, ...] = Field(min_length=1)
    nullable: bool

    @model_validator(mode="after")
    def _categories_unique(self) -> "CategoryFeature":
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"feature {self.name!r} lists a category twice")
        return self


Feature = Annotated[NumberFeature | IntegerFeature | CategoryFeature, Field(discriminator="type")]


class FeatureSchema(BaseModel):
    model_config = _FROZEN

    schema_version: Literal[1]
    target: str = Field(min_length=1)
    classes: tuple[str, ...] = Field(min_length=1)
    features: tuple[Feature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_unique(self) -> "FeatureSchema":
        names = [feature.name for feature in self.features]
        if len(set(names)) != len(names):
            raise ValueError("a feature name appears twice")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("a class appears twice")
        if self.target in names:
            raise ValueError(f"the target {self.target!r} is also listed as a feature")
        return self
