"""The API's request and response models.

The prediction models depend on the model being served: each feature in
`schema.json` becomes a required field whose type only admits values the pipeline
was fitted to handle, so a bad request is refused with a 422 naming the field
instead of reaching scikit-learn. They are built at start-up, once the schema is
read; the models that do not depend on it are plain classes.
"""

from typing import Annotated, Any, Literal

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, create_model, with_config
from typing_extensions import TypedDict

from api.feature_schema import CategoryFeature, Feature, FeatureSchema, IntegerFeature

# Strict: JSON true and "1.5" are not numbers. NaN and Infinity are refused because
# Python's JSON parser accepts them although JSON does not.
Number = Annotated[float, Strict(), AllowInfNan(False)]
# The model frame holds integers as int64; a larger JSON integer would overflow it.
Integer = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]


class ModelInfo(BaseModel):
    commit: str = Field(description="Git commit of the training run that made the model.")
    branch: str = Field(description="Git branch of that training run.")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model: ModelInfo


class LineageResponse(BaseModel):
    lineage: dict[str, Any] = Field(description="lineage.json from the model folder.")
    metrics: dict[str, Any] = Field(description="metrics.json from the model folder.")


def _instance_model(schema: FeatureSchema) -> type:
    """One instance: every feature of the schema, nothing else.

    A TypedDict rather than a BaseModel: feature names are data column names, which
    need not be Python identifiers and may clash with BaseModel's own attributes.
    """
    fields = {feature.name: _feature_type(feature) for feature in schema.features}
    # TypedDict's functional form takes any string as a key, which a class body cannot.
    instance = TypedDict("Instance", fields)
    return with_config(ConfigDict(extra="forbid"))(instance)


def predict_request_model(schema: FeatureSchema, max_batch: int) -> type[BaseModel]:
    instances = Annotated[
        list[_instance_model(schema)],
        Field(min_length=1, max_length=max_batch, description="The instances to classify."),
    ]
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        instances=(instances, ...),
        parameters=(
            dict[str, Any] | None,
            Field(
                default=None,
                description="Accepted for Vertex AI compatibility; this model takes none.",
            ),
        ),
    )


def predict_response_model(schema: FeatureSchema) -> type[BaseModel]:
    prediction = create_model(
        "Prediction",
        label=(Literal[schema.classes], Field(description="The most probable class.")),
        probabilities=(
            dict[str, float],
            Field(description="The probability of each class; they sum to 1."),
        ),
    )
    return create_model(
        "PredictResponse",
        predictions=(list[prediction], Field(description="One per instance, in order.")),
        model=(ModelInfo, ...),
    )


def _feature_type(feature: Feature) -> Any:
    if isinstance(feature, CategoryFeature):
        value: Any = Literal[feature.categories]
    elif isinstance(feature, IntegerFeature):
        value = Integer
    else:
        value = Number
    return value | None if feature.nullable else value
