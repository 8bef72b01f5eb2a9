"""Each step of a job's life (create, wait, submit, cancel) as a Prefect task, so that a flow run's graph
tells the story: what was created, how long it was followed, which tool calls ran, whether it was
cancelled, each with its state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

T = TypeVar("T")


class PrefectSteps:
    """Runs each step as a Prefect task inside a flow run (as it is, outside one)."""

    def run(self, name: str, step: Callable[[], T]) -> T:
        """Run ``step`` as a task named ``name``; its result is returned and its exception raised as is."""
        if FlowRunContext.get() is None:
            return step()
        return task(name=name, cache_policy=NO_CACHE, persist_result=False)(step)()


STEPS = PrefectSteps()
"""The steps runner of the library's flows."""
