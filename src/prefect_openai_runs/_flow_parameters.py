"""A flow whose ``requests`` parameter is stored on the Prefect server as a summary, never as the requests.

Prefect stores a flow run's parameters in its database (:meth:`prefect.Flow.serialize_parameters`) and
refuses a flow run whose parameters exceed 512 KB. A batch's requests are users' prompts and may weigh
hundreds of megabytes: :class:`RequestsSummaryFlow` stores ``"<3,000 batch requests>"`` for a list of them
(a path stays as it is, every other parameter as Prefect would store it). The flow itself still receives
the requests: only what is stored changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sized
from typing import Any, TypeVar

from prefect import Flow
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture
from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")

REQUESTS_PARAMETER = "requests"
"""The parameter stored as a summary."""


def summarise_requests(value: Any) -> Any:
    """What is stored for a ``requests`` parameter: a path (or its text) as is, a collection as a count.

    Example:
        ```python
        summarise_requests([{"input": "hi"}] * 3000)  # '<3,000 batch requests>'
        summarise_requests("requests.jsonl")  # 'requests.jsonl'
        ```
    """
    if value is None or isinstance(value, (str, os.PathLike, PrefectFuture, State)):
        return value
    if isinstance(value, Sized):
        count = len(value)
        return f"<{count:,} batch request{'' if count == 1 else 's'}>"
    return "<batch requests>"


class RequestsSummaryFlow(Flow[P, R]):
    """A Prefect flow that stores its ``requests`` parameter as a summary (see :func:`summarise_requests`).

    It behaves as any flow otherwise: called directly or inside a parent flow, with
    :meth:`with_options` (which keeps the class), served or deployed (its parameter schema is the
    function's, ``requests`` included).

    Example:
        ```python
        def send(requests: list[dict[str, str]]) -> int:
            return len(requests)

        send_flow = RequestsSummaryFlow(send, name="send")  # or @requests_summary_flow(name="send")
        ```
    """

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Prefect's stored form of the parameters, ``requests`` summarised."""
        if REQUESTS_PARAMETER in parameters:
            parameters = {**parameters, REQUESTS_PARAMETER: summarise_requests(parameters[REQUESTS_PARAMETER])}
        return super().serialize_parameters(parameters)

    def with_options(self, **options: Any) -> RequestsSummaryFlow[P, R]:
        """A copy with other options (see :meth:`prefect.Flow.with_options`), still summarising ``requests``."""
        copy = super().with_options(**options)
        copy.__class__ = type(self)
        return copy  # type: ignore[return-value]


def requests_summary_flow(**options: Any) -> Callable[[Callable[P, R]], RequestsSummaryFlow[P, R]]:
    """Like ``@prefect.flow(**options)``, making a :class:`RequestsSummaryFlow`.

    Example:
        ```python
        @requests_summary_flow(name="send")
        def send(requests: list[dict[str, str]]) -> int:
            return len(requests)
        ```
    """

    def decorate(fn: Callable[P, R]) -> RequestsSummaryFlow[P, R]:
        return RequestsSummaryFlow(fn, **options)

    return decorate
