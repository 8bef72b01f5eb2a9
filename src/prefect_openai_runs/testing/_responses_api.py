"""The background responses operations, HTTP aside: each takes parsed input, returns the response
object (or a stream subscription), raises ApiError."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect_openai_runs.models.responses import ResponseStatus

from . import _errors as errors
from . import _responses_input as schema
from ._events import Subscription
from ._objects import new_id
from ._response_scripts import ResponseContext, ResponseScript, ResponseScriptBook
from ._responses_machine import ResponseMachine
from ._responses_state import STREAM_END_EVENTS, TERMINAL, ResponseState
from ._spec import validate

JSON = dict[str, Any]


def response_subscription() -> Subscription:
    """A subscription that ends after a response's terminal event, with nothing after it."""
    return Subscription(end_events=STREAM_END_EVENTS, done=None)


@dataclass
class ResponsesSettings:
    """Settings read per request (safe to change while serving).

    Attributes:
        resume_window: Seconds after creation a background stream can still be resumed.
        unstored_retention: Seconds a response created with ``store: false`` stays retrievable.
        stored_retention: Seconds a stored response stays retrievable (None: kept for good).
    """

    resume_window: float = 300.0
    unstored_retention: float = 600.0
    stored_retention: float | None = None


class ResponsesApi:
    """``/responses``: create (background or not, streamed or not), get, resume a stream, cancel, delete.

    Every method runs on the server's event loop, under ``lock``.

    Args:
        machine: The responses scheduler (it holds the responses).
        scripts: Response script rules.
        lock: The emulator's lock.
        settings: Resume window and retention.
        clock: ``time.time``.
    """

    def __init__(
        self,
        machine: ResponseMachine,
        scripts: ResponseScriptBook,
        lock: threading.RLock,
        settings: ResponsesSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.machine = machine
        self.responses = machine.responses
        self.scripts = scripts
        self.settings = settings
        self._lock = lock
        self._clock = clock
        self._continuations: dict[str, ResponseScript] = {}

    def create(self, body: Any, stream: Subscription | None = None) -> JSON:
        """POST /responses. A foreground create that is not streamed answers once the response is done."""
        data = validate("responses", "CreateResponse", body)
        background, stored = bool(data.get("background")), data.get("store") is not False
        if background and not stored:
            raise errors.background_needs_store()
        with self._lock:
            script = self._script(data, background)
            response = ResponseState(
                id=new_id("resp"),
                created_precise=self._clock(),
                background=background,
                stored=stored,
                params=_echo(data),
                status=ResponseStatus.QUEUED if background else ResponseStatus.IN_PROGRESS,
            )
            self.responses[response.id] = response
            if script.function_calls:
                self._continuations[response.id] = script.continuation()
            if stream is not None:
                self.machine.hub.subscribe(response.id, stream)
            self.machine.launch(response, script)
            if stream is None and not background:
                self.machine.finish_now(response)
            return response.to_api()

    def get(self, response_id: str) -> JSON:
        """GET /responses/{id}."""
        with self._lock:
            return self._find(response_id).to_api()

    def resume(self, response_id: str, starting_after: int | None, stream: Subscription) -> None:
        """GET /responses/{id}?stream=true: the kept events after ``starting_after``, then the live ones.

        Raises:
            ApiError: 400 for a foreground response or one older than the resume window.
        """
        with self._lock:
            response = self._find(response_id)
            if not response.background:
                raise errors.stream_not_background()
            if self._clock() - response.created_precise > self.settings.resume_window:
                raise errors.stream_too_old(self.settings.resume_window / 60)
            self.machine.log.count("stream_resumes")
            for event in response.events_after(starting_after):
                stream.push(event["type"], event)
            if response.status in TERMINAL:
                stream.close()
            else:
                self.machine.hub.subscribe(response.id, stream)

    def cancel(self, response_id: str) -> JSON:
        """POST /responses/{id}/cancel."""
        with self._lock:
            response = self._find(response_id)
            self.machine.cancel(response)
            return response.to_api()

    def delete(self, response_id: str) -> JSON:
        """DELETE /responses/{id}."""
        with self._lock:
            response = self._find(response_id)
            self._forget(response.id)
            self.machine.log.count("responses_deleted")
            return {"id": response.id, "object": "response", "deleted": True}

    def kept(self, response: ResponseState) -> bool:
        """Whether the response is still within its retention (a pure check, safe from any thread)."""
        keep = self.settings.stored_retention if response.stored else self.settings.unstored_retention
        return keep is None or self._clock() - response.created_precise <= keep

    def find(self, response_id: str) -> ResponseState | None:
        """The response, if it is still kept; one past its retention is forgotten (loop thread only)."""
        response = self.responses.get(response_id)
        if response is None:
            return None
        if not self.kept(response):
            self._forget(response_id)
            return None
        return response

    def reset(self) -> None:
        """Forget every response and its timers."""
        self.machine.reset()
        self.responses.clear()
        self._continuations.clear()

    # -- helpers -------------------------------------------------------------------------------

    def _find(self, response_id: str) -> ResponseState:
        found = self.find(response_id)
        if found is None:
            raise errors.response_not_found(response_id)
        return found

    def _forget(self, response_id: str) -> None:
        self.machine.forget(response_id)
        self.responses.pop(response_id, None)
        self._continuations.pop(response_id, None)

    def _script(self, data: JSON, background: bool) -> ResponseScript:
        """The script a new response follows: the continuation of the previous response's script when
        it answers that response's function calls (which must all be answered), else a rule's, else the
        default."""
        previous_id = data.get("previous_response_id")
        continuation: ResponseScript | None = None
        if previous_id is not None:
            previous = self.find(previous_id)
            if previous is None:
                raise errors.previous_response_not_found(previous_id)
            answered = schema.function_outputs(data.get("input"))
            for call_id in previous.function_call_ids:
                if call_id not in answered:
                    raise errors.missing_function_output(call_id)
            continuation = self._continuations.get(previous_id)
        context = ResponseContext(
            model=data["model"],
            metadata=dict(data.get("metadata") or {}),
            input_text=schema.input_text(data.get("input")),
            instructions=data.get("instructions") or "",
            background=background,
            previous_response_id=previous_id,
        )
        return continuation if continuation is not None else self.scripts.choose(context)


def _echo(data: JSON) -> JSON:
    """The request fields a response echoes, with the API's defaults where not given."""
    return {
        "model": data["model"],
        "instructions": data.get("instructions"),
        "metadata": data.get("metadata") or {},
        "previous_response_id": data.get("previous_response_id"),
        "tools": data.get("tools") or [],
        "tool_choice": data.get("tool_choice") or "auto",
        "parallel_tool_calls": data.get("parallel_tool_calls", True) is not False,
        "temperature": data.get("temperature", 1.0),
        "top_p": data.get("top_p", 1.0),
        "max_output_tokens": data.get("max_output_tokens"),
        "max_tool_calls": data.get("max_tool_calls"),
        "reasoning": data.get("reasoning"),
        "text": data.get("text") or {"format": {"type": "text"}},
        "truncation": data.get("truncation") or "disabled",
        "service_tier": data.get("service_tier") or "default",
        "store": data.get("store") is not False,
        **({"user": data["user"]} if data.get("user") is not None else {}),
    }
