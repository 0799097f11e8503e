"""How the values a batch gives for one feature become the NumPy column the pipeline expects.

Both scorers start from these columns: the pipeline path puts them in a DataFrame
(predictor.py), the fast path runs the fitted preprocessing on them itself
(fast_path.py). With one conversion, the start-up check of the fast path against the
pipeline compares the two on the very same arrays. The dtypes are decided at start-up
from the schema, never guessed per request.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from api.feature_schema import CategoryFeature, Feature, IntegerFeature, NumberFeature

Column = Callable[[list[Any]], np.ndarray]


def column_builder(feature: Feature) -> Column:
    """How one feature's values become the column the pipeline was fitted on.

    A missing value (None) becomes NaN, in number and category columns alike.
    """
    if isinstance(feature, NumberFeature) or (
        isinstance(feature, IntegerFeature) and feature.nullable
    ):
        # NumPy turns None into NaN in a float array, which the pipeline's imputer fills;
        # pandas reads an integer column with gaps as float64 in training too.
        return lambda values: np.array(values, dtype=np.float64)
    if isinstance(feature, IntegerFeature):
        return lambda values: np.array(values, dtype=np.int64)
    if isinstance(feature, CategoryFeature) and feature.nullable:
        # scikit-learn's imputers recognise NaN as missing in text columns, not None.
        return lambda values: np.array(
            [np.nan if value is None else value for value in values], dtype=object
        )
    return lambda values: np.array(values, dtype=object)
