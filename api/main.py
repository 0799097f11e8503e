"""The FastAPI application: Vertex AI's custom-container contract over one model.

`create_app` builds the app; the model is read in the lifespan, once, before the
server accepts requests, so a server that answers at all has its model loaded. The
predict route is added there too, because its request model is derived from the
model's schema.
"""

import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.routing import BaseRoute

from api.batcher import MicroBatcher
from api.body_limit import BodyLimitMiddleware
from api.errors import install_error_handlers
from api.model_store import LoadedModel, load_model
from api.predictor import Predictor
from api.schemas import (
    HealthResponse,
    LineageResponse,
    ModelInfo,
    predict_request_model,
    predict_response_model,
)
from api.settings import Settings, get_settings

logger = logging.getLogger("uvicorn.error")  # uvicorn's own log, which the platforms collect


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = load_model(settings.model_dir)
        app.state.model = model
        predict_route = _add_predict_route(app, settings, model)
        # Everything loaded so far (libraries, model) lives as long as the process. Frozen,
        # the garbage collector stops re-scanning it: full collections went from about
        # 100 ms, landing on random requests, to a scan of request garbage only.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # Leaves the app as create_app made it, so it can be started again.
            app.router.routes.remove(predict_route)
            app.openapi_schema = None

    app = FastAPI(
        title="Model API",
        summary="Predictions from the model this image was built with.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.add_api_route(
        settings.health_route,
        health,
        methods=["GET"],
        summary="Ready: the model is loaded.",
    )
    app.add_api_route(
        "/lineage",
        lineage,
        methods=["GET"],
        summary="Where the model comes from and how it scored.",
    )
    return app


async def health(request: Request) -> HealthResponse:
    model: LoadedModel = request.app.state.model
    return HealthResponse(status="ok", model=ModelInfo(commit=model.commit, branch=model.branch))


async def lineage(request: Request) -> LineageResponse:
    """lineage.json and metrics.json as training wrote them into the model folder."""
    model: LoadedModel = request.app.state.model
    return LineageResponse(lineage=model.lineage, metrics=model.metrics)


def _add_predict_route(app: FastAPI, settings: Settings, model: LoadedModel) -> BaseRoute:
    request_model = predict_request_model(model.schema, settings.max_batch)
    predictor = Predictor(model.pipeline, model.schema.features)
    batcher = MicroBatcher(predictor.probabilities, max_rows=settings.max_batch)
    app.state.batcher = batcher
    logger.info("scoring with the %s", predictor.scoring)
    if predictor.fast_path_refused:
        logger.info("no fast path: %s", predictor.fast_path_refused)
    model_info = {"commit": model.commit, "branch": model.branch}

    # Scoring runs on the event loop, not in a worker thread: a request is a few
    # milliseconds of CPU under the GIL, so a thread hop would add latency and no
    # parallelism. Requests that are ready together share one pipeline call.
    async def predict(body: request_model) -> Response:
        """Each instance must give every feature of the model's schema, and nothing else."""
        answers = predictor.answers(await batcher.score(body.instances))
        # Serialised here rather than through response_model, which would validate
        # and re-encode what this code has just built from the model's own classes;
        # response_model still documents the shape in the OpenAPI schema.
        content = json.dumps({"predictions": answers, "model": model_info}, separators=(",", ":"))
        return Response(content, media_type="application/json")

    app.add_api_route(
        settings.predict_route,
        predict,
        methods=["POST"],
        response_model=predict_response_model(model.schema),
        summary="Classify instances.",
    )
    # add_api_route appends the route it makes.
    return app.router.routes[-1]


# What `python -m api` (and `uvicorn api.main:app` in development) serves.
app = create_app()
