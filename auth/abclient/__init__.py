"""The A/B-test reference client a website runs in front of the experiment's gateway.

Copy this folder into the site (it needs httpx and redis, nothing from this
repository); README.md next to this file says how to use it and how to port it.
"""

from .assignment import assign_variant, hash_user, variant_score
from .client import (
    ConfigError,
    ExperimentClient,
    ExperimentConfig,
    GatewayError,
    NoExperimentRunning,
    Prediction,
    PublishedFrom,
    Variant,
    cache_key,
    canonical_request,
    exposure_event,
)

__all__ = [
    "ConfigError",
    "ExperimentClient",
    "ExperimentConfig",
    "GatewayError",
    "NoExperimentRunning",
    "Prediction",
    "PublishedFrom",
    "Variant",
    "assign_variant",
    "cache_key",
    "canonical_request",
    "exposure_event",
    "hash_user",
    "variant_score",
]
