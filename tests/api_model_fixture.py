"""A real model folder for the API tests, made here so they do not wait on training/.

It has the shape a training run writes: a scikit-learn Pipeline with a
ColumnTransformer fitted on the penguins CSV and saved with skops.io, plus
schema.json, lineage.json and metrics.json. Test modules load its fixtures with
`pytest_plugins = ["tests.api_model_fixture"]` and import its constants; it holds no
assertions, so pytest need not rewrite it (PYTEST_DONT_REWRITE), which is what lets a
test module import it before pytest registers it as a plugin.
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io
import uvicorn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

DATA = Path(__file__).resolve().parent.parent / "training" / "data" / "penguins.csv"
TARGET = "species"
NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORIES = {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["female", "male"]}

SCHEMA: dict[str, Any] = {
    "schema_version": 1,
    "target": TARGET,
    "classes": ["Adelie", "Chinstrap", "Gentoo"],
    "features": [
        *({"name": name, "type": "number", "nullable": True} for name in NUMBERS),
        {"name": "year", "type": "integer", "nullable": False},
        {
            "name": "island",
            "type": "category",
            "categories": CATEGORIES["island"],
            "nullable": False,
        },
        {"name": "sex", "type": "category", "categories": CATEGORIES["sex"], "nullable": True},
    ],
}
LINEAGE: dict[str, Any] = {
    "branch": "feat/fixture",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "data": {"uri": str(DATA)},
}
METRICS: dict[str, Any] = {"accuracy": 0.99}

# A Gentoo: long flippers, heavy, from Biscoe.
VALID_INSTANCE: dict[str, Any] = {
    "bill_length_mm": 46.5,
    "bill_depth_mm": 14.8,
    "flipper_length_mm": 217,
    "body_mass_g": 5200,
    "year": 2008,
    "island": "Biscoe",
    "sex": "female",
}


def penguins_pipeline() -> Pipeline:
    """The fitted pipeline, shaped like the one training ships."""
    frame = pd.read_csv(DATA).dropna(subset=[TARGET])
    columns = [*NUMBERS, "year", *CATEGORIES]
    preprocess = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                [*NUMBERS, "year"],
            ),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                list(CATEGORIES),
            ),
        ]
    )
    pipeline = Pipeline([("preprocess", preprocess), ("model", LogisticRegression(max_iter=1000))])
    return pipeline.fit(frame[columns], frame[TARGET])


def write_model_dir(
    folder: Path,
    pipeline: Any,
    schema: dict[str, Any] = SCHEMA,
    lineage: dict[str, Any] = LINEAGE,
    metrics: dict[str, Any] = METRICS,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    skops.io.dump(pipeline, folder / "model.skops")
    (folder / "schema.json").write_text(json.dumps(schema))
    (folder / "lineage.json").write_text(json.dumps(lineage))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture(scope="session")
def penguins_model() -> Pipeline:
    return penguins_pipeline()


@pytest.fixture(scope="session")
def api_model_dir(tmp_path_factory: pytest.TempPathFactory, penguins_model: Pipeline) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("api-model"), penguins_model)


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """`app` behind a real uvicorn server in a thread; the loopback port it listens on.

    The socket is bound before the server starts, so no other process can take the
    port in between.
    """
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
