"""The scheduler: moves runs through :data:`._state.TRANSITIONS` on real timers, on the server's loop.

State advances on schedule whether or not anyone polls: every pending move is an ``asyncio`` timer
(``loop.call_later``), so streams see events the moment they happen. All methods run on the event
loop thread, under the emulator's lock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prefect_openai_runs.models.status import RunStatus

from . import _errors as errors
from ._events import EventHub
from ._objects import Message, RunStep, new_id, text_content
from ._records import RequestLog
from ._scripts import RunScript
from ._state import CANCELLABLE, EXPIRABLE, TERMINAL, RunState, status_event
from ._store import Store

S = RunStatus
_DELTA_CHUNKS = 3


@dataclass
class _Track:
    """The machine's per-run bookkeeping: the script segment being played and its timers."""

    script: RunScript
    step: asyncio.TimerHandle | None = None
    expiry: asyncio.TimerHandle | None = None

    def cancel_timers(self) -> None:
        for handle in (self.step, self.expiry):
            if handle is not None:
                handle.cancel()
        self.step = self.expiry = None


class RunMachine:
    """Plays each run's script: queued → in_progress → outcome, cancels, tool outputs and expiry.

    Args:
        store: The objects.
        hub: The stream subscriptions.
        log: Counters.
        lock: The emulator's lock, taken by timer callbacks.
        cancelling_delay: Seconds a run stays ``cancelling`` unless its script says otherwise.
        clock: ``time.time``.
    """

    def __init__(
        self,
        store: Store,
        hub: EventHub,
        log: RequestLog,
        lock: threading.RLock,
        cancelling_delay: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.hub = hub
        self.log = log
        self.cancelling_delay = cancelling_delay
        self._lock = lock
        self._clock = clock
        self._tracks: dict[str, _Track] = {}

    # -- the moves a client causes ---------------------------------------------------------------

    def launch(self, run: RunState, script: RunScript) -> None:
        """Start a freshly stored ``queued`` run: announce it and schedule its script and expiry."""
        track = _Track(script)
        self._tracks[run.id] = track
        self.store.active_run_ids[run.id] = None
        self.store.threads[run.thread_id].active_run_id = run.id
        self.log.count("runs_created")
        data = run.to_api()
        self.hub.publish(run.id, "thread.run.created", data)
        self.hub.publish(run.id, status_event(S.QUEUED), data)
        track.expiry = self._later(run.expires_at_precise - self._clock(), run, self._expire)
        self._schedule(run, script.queued_seconds, self._begin)

    def cancel(self, run: RunState) -> None:
        """Accept a cancel: the run becomes ``cancelling`` and settles after the cancelling delay.

        Raises:
            ApiError: 400 if the run is already cancelling or terminal.
        """
        if run.status not in CANCELLABLE:
            raise errors.cannot_cancel(run.status.value)
        self.log.count("cancels")
        track = self._tracks[run.id]
        run.cancel_requested_at = self._clock()
        self._enter(run, S.CANCELLING)
        delay = track.script.cancelling_delay
        self._schedule(run, self.cancelling_delay if delay is None else delay, self._settle_cancel)

    def submit_tool_outputs(self, run: RunState, outputs: Sequence[tuple[str, str]]) -> None:
        """Answer a ``requires_action`` run's tool calls; it goes back to ``queued`` and plays ``then``.

        Raises:
            ApiError: 400 if the run does not wait for tool outputs or the ids do not match.
        """
        if run.status is not S.REQUIRES_ACTION or run.required_action is None:
            raise errors.no_tool_outputs_accepted(run.status.value)
        calls = run.required_action["submit_tool_outputs"]["tool_calls"]
        expected = [c["id"] for c in calls]
        answered = dict(outputs)
        if sorted(answered) != sorted(expected) or len(outputs) != len(expected):
            raise errors.tool_outputs_mismatch(expected, [call_id for call_id, _ in outputs])
        self.log.count("tool_outputs_submitted")
        step = self._tool_step(run)
        if step is not None:
            for call in step.step_details["tool_calls"]:
                call["function"]["output"] = answered[call["id"]]
            step.end("completed", self._clock())
            self.hub.publish(run.id, "thread.run.step.completed", step.to_api())
        track = self._tracks[run.id]
        track.script = track.script.continuation()
        self._enter(run, S.QUEUED)
        self._schedule(run, track.script.queued_seconds, self._begin)

    def reset(self) -> None:
        """Drop every timer and end every stream (the store is reset separately)."""
        for track in self._tracks.values():
            track.cancel_timers()
        self._tracks.clear()
        self.hub.close_all()

    # -- the moves the clock causes ---------------------------------------------------------------

    def _begin(self, run: RunState) -> None:
        self._enter(run, S.IN_PROGRESS)
        script = self._tracks[run.id].script
        if script.outcome != "never":
            self._schedule(run, script.in_progress_seconds, self._conclude)

    def _conclude(self, run: RunState) -> None:
        script = self._tracks[run.id].script
        if script.outcome == "completed":
            self._complete(run)
        elif script.outcome == "failed":
            run.last_error = {"code": script.error_code, "message": script.error_message}
            self._enter(run, S.FAILED)
        elif script.outcome == "incomplete":
            run.incomplete_details = {"reason": script.incomplete_reason}
            self._enter(run, S.INCOMPLETE)
        elif script.outcome == "requires_action":
            self._require_action(run, script)

    def _settle_cancel(self, run: RunState) -> None:
        if self._tracks[run.id].script.ignore_cancel:
            self._complete(run)
        else:
            self._end_tool_step(run, "cancelled")
            self._enter(run, S.CANCELLED)

    def _expire(self, run: RunState) -> None:
        if run.status in EXPIRABLE:
            self._end_tool_step(run, "expired")
            self._enter(run, S.EXPIRED)

    # -- effects -----------------------------------------------------------------------------------

    def _complete(self, run: RunState) -> None:
        """Write the reply (message + ``message_creation`` step, with their events), then complete."""
        script = self._tracks[run.id].script
        now = self._clock()
        message = Message(
            id=new_id("msg"),
            thread_id=run.thread_id,
            created_at=int(now),
            role="assistant",
            content=text_content(script.reply_text),
            assistant_id=run.assistant_id,
            run_id=run.id,
            completed_at=int(now),
        )
        step = RunStep(
            id=new_id("step"),
            run_id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            created_at=int(now),
            type="message_creation",
            step_details={"type": "message_creation", "message_creation": {"message_id": message.id}},
        )
        self.store.add_step(step)
        self.store.add_message(message)
        publish = self._publisher(run)
        publish("thread.run.step.created", step.to_api())
        publish("thread.run.step.in_progress", step.to_api())
        in_progress = message.to_api(status="in_progress", content=[], completed_at=None)
        publish("thread.message.created", in_progress)
        publish("thread.message.in_progress", in_progress)
        for index, chunk in enumerate(_chunks(script.reply_text, _DELTA_CHUNKS)):
            delta: dict[str, Any] = {
                "content": [{"index": 0, "type": "text", "text": {"value": chunk, "annotations": []}}]
            }
            if index == 0:
                delta["role"] = "assistant"
            publish("thread.message.delta", {"id": message.id, "object": "thread.message.delta", "delta": delta})
        publish("thread.message.completed", message.to_api())
        step.end("completed", now, _usage(script, produced=True))
        publish("thread.run.step.completed", step.to_api())
        self._enter(run, S.COMPLETED)

    def _require_action(self, run: RunState, script: RunScript) -> None:
        calls: list[dict[str, Any]] = [
            {"id": new_id("call"), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in script.tool_calls
        ]
        step = RunStep(
            id=new_id("step"),
            run_id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            created_at=int(self._clock()),
            type="tool_calls",
            step_details={
                "type": "tool_calls",
                "tool_calls": [{**c, "function": {**c["function"], "output": None}} for c in calls],
            },
        )
        self.store.add_step(step)
        run.tool_step_id = step.id
        self.hub.publish(run.id, "thread.run.step.created", step.to_api())
        self.hub.publish(run.id, "thread.run.step.in_progress", step.to_api())
        run.required_action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}
        self._enter(run, S.REQUIRES_ACTION)

    def _enter(self, run: RunState, status: RunStatus) -> None:
        """The one place a run changes status: move, bookkeeping, and the stream event."""
        now = self._clock()
        if status in TERMINAL:
            script = self._tracks[run.id].script
            run.usage = _usage(script, produced=status in (S.COMPLETED, S.INCOMPLETE))
        run.move_to(status, now)
        if status in TERMINAL:
            self._tracks.pop(run.id).cancel_timers()
            self.store.active_run_ids.pop(run.id, None)
            thread = self.store.threads.get(run.thread_id)
            if thread is not None and thread.active_run_id == run.id:
                thread.active_run_id = None
            self.log.count(f"runs_{status.value}")
        self.hub.publish(run.id, status_event(status), run.to_api())

    def _tool_step(self, run: RunState) -> RunStep | None:
        if run.tool_step_id is None:
            return None
        step = self.store.step(run, run.tool_step_id)
        return step if step.status == "in_progress" else None

    def _end_tool_step(self, run: RunState, status: str) -> None:
        step = self._tool_step(run)
        if step is not None:
            step.end(status, self._clock())
            self.hub.publish(run.id, f"thread.run.step.{status}", step.to_api())

    def _publisher(self, run: RunState) -> Callable[[str, object], None]:
        return lambda event, data: self.hub.publish(run.id, event, data)

    # -- timers ------------------------------------------------------------------------------------

    def _schedule(self, run: RunState, delay: float, move: Callable[[RunState], None]) -> None:
        track = self._tracks[run.id]
        if track.step is not None:
            track.step.cancel()
        track.step = self._later(delay, run, move)

    def _later(self, delay: float, run: RunState, move: Callable[[RunState], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), self._fire, run.id, move)

    def _fire(self, run_id: str, move: Callable[[RunState], None]) -> None:
        with self._lock:
            run = self.store.runs.get(run_id)
            if run is not None and run_id in self._tracks:
                move(run)


def _usage(script: RunScript, *, produced: bool) -> dict[str, int]:
    prompt, completion = script.usage
    completion = completion if produced else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunks(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
