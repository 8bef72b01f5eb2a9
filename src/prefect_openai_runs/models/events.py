"""Server-sent events of a streamed run, typed by their ``event`` name."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SkipValidation

from prefect_openai_runs.models.errors import ErrorDetail
from prefect_openai_runs.models.runs import Run
from prefect_openai_runs.models.steps import RunStep
from prefect_openai_runs.models.threads import Message, Thread

DONE_EVENT = "done"
ERROR_EVENT = "error"


class StreamEvent(BaseModel):
    """One event of a run's stream.

    ``data`` is parsed by the event's family: ``thread.run.*`` gives a :class:`Run`, ``thread.run.step.*``
    a :class:`RunStep` (deltas stay dicts), ``thread.message.*`` a :class:`Message` (deltas stay dicts),
    ``thread.created`` a :class:`Thread`, ``error`` an :class:`ErrorDetail`, ``done`` nothing.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    event: str
    data: SkipValidation[Run | RunStep | Message | Thread | ErrorDetail | dict[str, Any] | None] = None

    @property
    def run(self) -> Run | None:
        """The run, for ``thread.run.*`` events."""
        return self.data if isinstance(self.data, Run) else None

    @property
    def is_done(self) -> bool:
        """Whether this is the final ``done`` event."""
        return self.event == DONE_EVENT

    @classmethod
    def parse(cls, event: str, payload: Any) -> StreamEvent:
        """Build the typed event from its name and decoded JSON payload.

        Args:
            event: The SSE ``event:`` field.
            payload: The decoded ``data:`` JSON (``None`` for ``done``).

        Returns:
            The typed event.
        """
        if event == DONE_EVENT or payload is None:
            return cls(event=event, data=None)
        if event == ERROR_EVENT:
            detail = payload.get("error", payload) if isinstance(payload, dict) else {"message": str(payload)}
            return cls(event=event, data=ErrorDetail.model_validate(detail))
        if event.endswith(".delta"):
            return cls(event=event, data=payload)
        if event.startswith("thread.run.step."):
            return cls(event=event, data=RunStep.model_validate(payload))
        if event.startswith("thread.run."):
            return cls(event=event, data=Run.model_validate(payload))
        if event.startswith("thread.message."):
            return cls(event=event, data=Message.model_validate(payload))
        if event == "thread.created":
            return cls(event=event, data=Thread.model_validate(payload))
        return cls(event=event, data=payload if isinstance(payload, dict) else {"value": payload})
