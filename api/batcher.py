"""Scores the instances of concurrent requests together, in one pipeline call.

A scikit-learn pipeline costs nearly the same for one row as for dozens: the time
goes to per-call work (column selection, validation, one small array per step), not
to the rows. Under concurrent load, scoring each request on its own spends the CPU
on that fixed cost again and again. The batcher lets every request that is ready
join the next call instead.

There is no timer: a request is never held back waiting for company. The first
request of a batch schedules the call two turns of the event loop later. Requests
that arrived during the previous call are read from their sockets in one turn, and
their handlers take their first step (parse, validate, join the batch) in the next;
the call comes after both. A lone request therefore pays two loop turns
(microseconds), while requests that arrive during a call, which is when they would
have queued anyway, are scored together by the next one. (With one turn only, a
benchmark at 16 connections saw batches of 2-3 instead of 16.)

A call that fails is retried request by request, so one request's bad input fails
that request alone. Scores do not depend on which requests share a call, except in
the last bits of a float: BLAS may sum in another order for another number of rows
(differences of about 1e-16 were seen).
"""

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Instances = Sequence[Mapping[str, Any]]


class MicroBatcher:
    def __init__(self, score: Callable[[list[Mapping[str, Any]]], np.ndarray], max_rows: int):
        self._score = score  # instances -> one row of scores per instance
        self._max_rows = max_rows  # a call never scores more rows than this (one request may)
        self._waiting: list[tuple[Instances, asyncio.Future]] = []
        self._flush_scheduled = False
        self.calls = 0  # scoring calls made, which the tests count

    async def score(self, instances: Instances) -> np.ndarray:
        """This request's rows of scores, from a call shared with whoever else is ready."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((instances, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(loop.call_soon, self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        waiting, self._waiting = self._waiting, []
        group: list[tuple[Instances, asyncio.Future]] = []
        rows = 0
        for item in waiting:
            if group and rows + len(item[0]) > self._max_rows:
                self._score_group(group)
                group, rows = [], 0
            group.append(item)
            rows += len(item[0])
        if group:
            self._score_group(group)

    def _score_group(self, group: list[tuple[Instances, asyncio.Future]]) -> None:
        instances = [row for rows, _ in group for row in rows]
        self.calls += 1
        try:
            scores = self._score(instances)
        except Exception as error:
            if len(group) == 1:
                _settle(group[0][1], error=error)
            else:
                for item in group:
                    self._score_group([item])
            return
        start = 0
        for rows, future in group:
            _settle(future, result=scores[start : start + len(rows)])
            start += len(rows)


def _settle(
    future: asyncio.Future, result: np.ndarray | None = None, error: Exception | None = None
) -> None:
    # A client that went away cancels its request's task, and with it the future.
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
