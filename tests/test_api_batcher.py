"""Concurrent requests share one pipeline call, and each still gets its own answer.

The batcher is driven directly with a recording scorer for its rules, then behind a
real uvicorn server with many connections at once, where the answers must equal
those of requests sent one at a time.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from api.batcher import MicroBatcher
from api.main import create_app
from api.settings import Settings
from tests.api_model_fixture import VALID_INSTANCE, serving

pytest_plugins = ["tests.api_model_fixture"]


class Recorder:
    """Scores an instance as its `x`; refuses any instance marked bad."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, instances):
        self.calls.append([row["x"] for row in instances])
        if any(row.get("bad") for row in instances):
            raise ValueError("a bad instance")
        return np.array([[row["x"]] for row in instances], dtype=float)


def run(batcher: MicroBatcher, requests: list[list[dict]]) -> list:
    async def all_at_once():
        return await asyncio.gather(
            *(batcher.score(rows) for rows in requests), return_exceptions=True
        )

    return asyncio.run(all_at_once())


def test_requests_ready_together_share_one_call_and_get_their_own_rows():
    scorer = Recorder()
    requests = [[{"x": i}, {"x": i + 100}] for i in range(10)]
    answers = run(MicroBatcher(scorer, max_rows=256), requests)
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 20
    for rows, answer in zip(requests, answers, strict=True):
        assert answer[:, 0].tolist() == [row["x"] for row in rows]


def test_a_call_never_takes_more_rows_than_the_limit_but_a_request_stays_whole():
    scorer = Recorder()
    requests = [[{"x": 1}] * 3, [{"x": 2}] * 3, [{"x": 3}] * 5]
    run(MicroBatcher(scorer, max_rows=4), requests)
    assert [len(call) for call in scorer.calls] == [3, 3, 5]


def test_one_requests_bad_input_fails_that_request_alone():
    scorer = Recorder()
    answers = run(
        MicroBatcher(scorer, max_rows=256), [[{"x": 1}], [{"x": 2, "bad": True}], [{"x": 3}]]
    )
    assert isinstance(answers[1], ValueError)
    assert answers[0][:, 0].tolist() == [1] and answers[2][:, 0].tolist() == [3]


def test_a_lone_request_is_scored_at_once_and_later_ones_start_a_new_batch():
    scorer = Recorder()
    batcher = MicroBatcher(scorer, max_rows=256)

    async def one_after_another():
        first = await batcher.score([{"x": 1}])
        second = await batcher.score([{"x": 2}])
        return first, second

    first, second = asyncio.run(one_after_another())
    assert scorer.calls == [[1], [2]]
    assert first[0, 0] == 1 and second[0, 0] == 2


def test_a_cancelled_request_does_not_disturb_the_others():
    scorer = Recorder()
    batcher = MicroBatcher(scorer, max_rows=256)

    async def one_gives_up():
        leaving = asyncio.ensure_future(batcher.score([{"x": 1}]))
        staying = asyncio.ensure_future(batcher.score([{"x": 2}]))
        await asyncio.sleep(0)
        leaving.cancel()
        return await staying

    assert asyncio.run(one_gives_up())[0, 0] == 2


@pytest.fixture(scope="module")
def server(api_model_dir):
    app = create_app(Settings(model_dir=api_model_dir))
    with serving(app) as port:
        yield app, f"http://127.0.0.1:{port}"


def instance(i: int) -> dict:
    return {**VALID_INSTANCE, "bill_length_mm": 35.0 + i / 4, "body_mass_g": 3000.0 + 25 * i}


def send_all_at_once(url: str, bodies: list[dict]) -> list[httpx.Response]:
    """Each body on a connection of its own, as separate users send them, 16 at a time."""

    def send(body):
        with httpx.Client(base_url=url) as client:
            return client.post("/predict", json=body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(send, bodies))


def test_answers_under_concurrency_equal_answers_one_at_a_time(server):
    app, url = server
    bodies = [{"instances": [instance(i)] * (1 + i % 3)} for i in range(64)]
    with httpx.Client(base_url=url) as client:
        alone = [client.post("/predict", json=body).json() for body in bodies]
    calls_before = app.state.batcher.calls
    together = send_all_at_once(url, bodies)
    assert [r.status_code for r in together] == [200] * len(bodies)
    for answer, expected in zip((r.json() for r in together), alone, strict=True):
        assert answer["model"] == expected["model"]
        assert [p["label"] for p in answer["predictions"]] == [
            p["label"] for p in expected["predictions"]
        ]
        # Equal to the last bits or nearly: BLAS may round a sum differently for
        # another number of rows.
        for got, want in zip(answer["predictions"], expected["predictions"], strict=True):
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-12)
    # Some of them were scored together (the exact grouping depends on timing).
    assert app.state.batcher.calls - calls_before < len(bodies)


def test_a_bad_request_among_concurrent_good_ones_gets_its_own_422(server):
    _, url = server
    bad = {"instances": [{**VALID_INSTANCE, "island": "Atlantis"}]}
    bodies = [{"instances": [instance(i)]} for i in range(15)] + [bad]
    statuses = [r.status_code for r in send_all_at_once(url, bodies)]
    assert statuses == [200] * 15 + [422]
