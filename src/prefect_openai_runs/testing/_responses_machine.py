"""The responses scheduler: moves responses through :data:`._responses_state.TRANSITIONS` on real
timers, on the server's loop, and writes their stream events. All methods run on the event loop
thread, under the emulator's lock."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect_openai_runs.models.responses import ResponseStatus

from . import _errors as errors
from ._events import EventHub
from ._machine import _chunks
from ._objects import new_id
from ._records import RequestLog
from ._response_scripts import ResponseScript
from ._responses_state import CANCELLABLE, STATUS_EVENTS, TERMINAL, ResponseState

S = ResponseStatus
_DELTA_CHUNKS = 3


@dataclass
class _Track:
    """The machine's per-response bookkeeping: its script and its pending timer."""

    script: ResponseScript
    step: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.step is not None:
            self.step.cancel()
        self.step = None


class ResponseMachine:
    """Plays each response's script: queued → in_progress → outcome, and cancels.

    Args:
        responses: The responses, by id.
        hub: The stream subscriptions.
        log: Counters.
        lock: The emulator's lock, taken by timer callbacks.
        clock: ``time.time``.
    """

    def __init__(
        self,
        responses: dict[str, ResponseState],
        hub: EventHub,
        log: RequestLog,
        lock: threading.RLock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.responses = responses
        self.hub = hub
        self.log = log
        self._lock = lock
        self._clock = clock
        self._tracks: dict[str, _Track] = {}

    # -- the moves a client causes ---------------------------------------------------------------

    def launch(self, response: ResponseState, script: ResponseScript) -> None:
        """Start a freshly stored response: announce it and schedule its script.

        A background response starts ``queued``; a foreground one starts ``in_progress``.
        """
        self._tracks[response.id] = _Track(script)
        self.log.count("responses_created")
        self._publish_status(response, "response.created")
        if response.status is S.QUEUED:
            self._publish_status(response, STATUS_EVENTS[S.QUEUED])
            self._schedule(response, script.queued_seconds, self._begin)
        else:
            self._publish_status(response, STATUS_EVENTS[S.IN_PROGRESS])
            self._schedule_conclusion(response)

    def finish_now(self, response: ResponseState) -> None:
        """Play a foreground response to its end at once (a create answered only when it is done)."""
        if response.id in self._tracks and self._tracks[response.id].script.outcome != "never":
            self._conclude(response)

    def cancel(self, response: ResponseState) -> None:
        """Cancel a background response; idempotent on a cancelled one.

        Raises:
            ApiError: 400 for a foreground response or one that is completed, failed or incomplete.
        """
        if not response.background:
            raise errors.cannot_cancel_foreground()
        if response.status is S.CANCELLED:
            return
        if response.status not in CANCELLABLE:
            raise errors.cannot_cancel_response(response.status.value)
        self.log.count("response_cancels")
        response.cancel_requested_at = self._clock()
        track = self._tracks[response.id]
        late = track.script.ignore_cancel and track.script.outcome == "completed"
        self._enter(response, S.CANCELLED, keep_track=late)
        if late:
            self._schedule(response, track.script.in_progress_seconds, self._conclude)

    def forget(self, response_id: str) -> None:
        """Drop a deleted (or no longer kept) response's timer and end its streams."""
        track = self._tracks.pop(response_id, None)
        if track is not None:
            track.cancel_timer()
        self.hub.close(response_id)

    def reset(self) -> None:
        """Drop every timer and end every stream (the responses are reset separately)."""
        for track in self._tracks.values():
            track.cancel_timer()
        self._tracks.clear()
        self.hub.close_all()

    # -- the moves the clock causes ---------------------------------------------------------------

    def _begin(self, response: ResponseState) -> None:
        self._enter(response, S.IN_PROGRESS)
        self._schedule_conclusion(response)

    def _schedule_conclusion(self, response: ResponseState) -> None:
        script = self._tracks[response.id].script
        if script.outcome != "never":
            self._schedule(response, script.in_progress_seconds, self._conclude)

    def _conclude(self, response: ResponseState) -> None:
        script = self._tracks[response.id].script
        if script.outcome == "completed":
            if script.output_text:
                self._emit_message(response, script.output_text, "completed")
            for call in script.function_calls:
                self._emit_function_call(response, call.name, call.arguments)
            self._enter(response, S.COMPLETED)
        elif script.outcome == "failed":
            response.error = {"code": script.error_code, "message": script.error_message}
            self._enter(response, S.FAILED)
        elif script.outcome == "incomplete":
            if script.output_text:
                self._emit_message(response, script.output_text[: len(script.output_text) // 2], "incomplete")
            response.incomplete_details = {"reason": script.incomplete_reason}
            self._enter(response, S.INCOMPLETE)

    # -- effects -----------------------------------------------------------------------------------

    def _emit_message(self, response: ResponseState, text: str, status: str) -> None:
        """Write an assistant message with its stream events (added, text deltas, done)."""
        index = len(response.output)
        item: dict[str, Any] = {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        response.output.append(item)
        place = {"item_id": item["id"], "output_index": index, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        self._publish(response, "response.output_item.added", {"output_index": index, "item": dict(item)})
        self._publish(response, "response.content_part.added", {**place, "part": part})
        for chunk in _chunks(text, _DELTA_CHUNKS):
            self._publish(response, "response.output_text.delta", {**place, "delta": chunk, "logprobs": []})
        self._publish(response, "response.output_text.done", {**place, "text": text, "logprobs": []})
        done_part = {**part, "text": text}
        self._publish(response, "response.content_part.done", {**place, "part": done_part})
        item.update(status=status, content=[done_part])
        self._publish(response, "response.output_item.done", {"output_index": index, "item": dict(item)})

    def _emit_function_call(self, response: ResponseState, name: str, arguments: str) -> None:
        """Write a function call with its stream events (added, argument deltas, done)."""
        index = len(response.output)
        call_id = new_id("call")
        item: dict[str, Any] = {
            "id": new_id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        response.output.append(item)
        response.function_call_ids.append(call_id)
        place = {"item_id": item["id"], "output_index": index}
        self._publish(response, "response.output_item.added", {"output_index": index, "item": dict(item)})
        self._publish(response, "response.function_call_arguments.delta", {**place, "delta": arguments})
        self._publish(
            response, "response.function_call_arguments.done", {**place, "name": name, "arguments": arguments}
        )
        item.update(status="completed", arguments=arguments)
        self._publish(response, "response.output_item.done", {"output_index": index, "item": dict(item)})

    def _enter(self, response: ResponseState, status: ResponseStatus, *, keep_track: bool = False) -> None:
        """The one place a response changes status: move, bookkeeping, and the stream event."""
        now = self._clock()
        if status in TERMINAL:
            response.usage = _usage(self._tracks[response.id].script, produced=status in (S.COMPLETED, S.INCOMPLETE))
        response.move_to(status, now)
        if status in TERMINAL:
            self.log.count(f"responses_{status.value}")
            if not keep_track:
                self._tracks.pop(response.id).cancel_timer()
        event = STATUS_EVENTS.get(status)
        if event is not None:
            self._publish_status(response, event)
        else:  # cancelled: the spec has no stream event for it; the stream just ends
            self.hub.close(response.id)

    def _publish_status(self, response: ResponseState, event_type: str) -> None:
        self._publish(response, event_type, {"response": response.to_api()})

    def _publish(self, response: ResponseState, event_type: str, payload: dict[str, Any]) -> None:
        self.hub.publish(response.id, event_type, response.record_event(event_type, payload))

    # -- timers ------------------------------------------------------------------------------------

    def _schedule(self, response: ResponseState, delay: float, move: Callable[[ResponseState], None]) -> None:
        track = self._tracks[response.id]
        track.cancel_timer()
        loop = asyncio.get_running_loop()
        track.step = loop.call_later(max(delay, 0.0), self._fire, response.id, move)

    def _fire(self, response_id: str, move: Callable[[ResponseState], None]) -> None:
        with self._lock:
            response = self.responses.get(response_id)
            if response is not None and response_id in self._tracks:
                move(response)


def _usage(script: ResponseScript, *, produced: bool) -> dict[str, Any]:
    input_tokens, output_tokens = script.usage
    output_tokens = output_tokens if produced else 0
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": script.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": min(script.reasoning_tokens, output_tokens)},
        "total_tokens": input_tokens + output_tokens,
    }
