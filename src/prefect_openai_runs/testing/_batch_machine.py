"""The batch scheduler: moves batches through :data:`._batch_state.BATCH_TRANSITIONS` on real timers.

validating → (input checked) in_progress → requests processed in steps (``request_counts`` advance)
→ finalizing → completed, with the output and error files written at the end. A cancel makes the
batch ``cancelling``, then ``cancelled`` with the results so far; expiry ends it ``expired`` with its
unfinished requests in the error file. All methods run on the event loop thread, under the lock.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prefect_openai_runs.models.batches import BatchStatus

from . import _errors as errors
from ._batch_scripts import BatchScript
from ._batch_state import (
    BATCH_CANCELLABLE,
    BATCH_EXPIRABLE,
    BATCH_TERMINAL,
    NO_USAGE,
    BatchState,
    FileState,
    LineResult,
)
from ._batch_validation import validate_input
from ._objects import new_id
from ._records import RequestLog

B = BatchStatus
STEPS = 10
"""``in_progress`` is played in at most this many steps, each processing a share of the requests."""
EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


@dataclass
class _Track:
    script: BatchScript
    step: asyncio.TimerHandle | None = None
    expiry: asyncio.TimerHandle | None = None

    def cancel_timers(self) -> None:
        for handle in (self.step, self.expiry):
            if handle is not None:
                handle.cancel()
        self.step = self.expiry = None


def _line_usage(script: BatchScript) -> tuple[int, int, int, int]:
    """The tokens of one successful request: input, output, cached input, reasoning output."""
    return (*script.token_usage, script.cached_tokens, script.reasoning_tokens)


class BatchMachine:
    """Plays each batch's script.

    Args:
        files: The file store (outputs are added to it).
        batches: The batches, by id.
        log: Counters (``batches_created``, ``batch_cancels``, ``batches_<terminal status>``).
        lock: The emulator's lock, taken by timer callbacks.
        clock: ``time.time``.
    """

    def __init__(
        self,
        files: dict[str, FileState],
        batches: dict[str, BatchState],
        log: RequestLog,
        lock: threading.RLock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.files = files
        self.batches = batches
        self.log = log
        self._lock = lock
        self._clock = clock
        self._tracks: dict[str, _Track] = {}

    def launch(self, batch: BatchState, script: BatchScript) -> None:
        """Start a freshly stored ``validating`` batch."""
        track = _Track(script)
        self._tracks[batch.id] = track
        self.log.count("batches_created")
        track.expiry = self._later(batch.created_precise + batch.completion_window - self._clock(), batch, self._expire)
        self._schedule(batch, script.validating_seconds, self._validate)

    def cancel(self, batch: BatchState) -> None:
        """Accept a cancel: ``cancelling``, then ``cancelled`` after the script's delay.

        Raises:
            ApiError: 400 if the batch is already cancelling or terminal.
        """
        if batch.status not in BATCH_CANCELLABLE:
            raise errors.ApiError(400, f"Cannot cancel a batch with status '{batch.status.value}'.")
        self.log.count("batch_cancels")
        batch.cancel_requested_at = self._clock()
        self._enter(batch, B.CANCELLING)
        self._schedule(batch, self._tracks[batch.id].script.cancelling_seconds, self._settle_cancel)

    def reset(self) -> None:
        """Drop every timer."""
        for track in self._tracks.values():
            track.cancel_timers()
        self._tracks.clear()

    # -- the moves the clock causes ---------------------------------------------------------------

    def _validate(self, batch: BatchState) -> None:
        script = self._tracks[batch.id].script
        requests, problems = validate_input(self.files[batch.input_file_id].content, batch.endpoint)
        if script.validation_error is not None:
            code, message = script.validation_error
            problems.append({"code": code, "message": message, "param": None, "line": None})
        if problems:
            batch.errors = problems
            self._enter(batch, B.FAILED)
            return
        batch.requests = requests
        batch.model = next((str(body["model"]) for _, body in requests if body.get("model")), None)
        self._enter(batch, B.IN_PROGRESS)
        if script.in_progress_seconds is not None:
            self._schedule(batch, script.in_progress_seconds / self._steps(batch), self._process)

    def _steps(self, batch: BatchState) -> int:
        return max(1, min(STEPS, len(batch.requests)))

    def _process(self, batch: BatchState) -> None:
        script = self._tracks[batch.id].script
        share = -(-len(batch.requests) // self._steps(batch))
        done = len(batch.results)
        for custom_id, body in batch.requests[done : done + share]:
            ok, response = script.outcome(batch.endpoint, custom_id, body)
            line = {"id": new_id("batch_req"), "custom_id": custom_id, "response": response, "error": None}
            batch.results.append(LineResult(custom_id, ok, line, _line_usage(script) if ok else NO_USAGE))
        if len(batch.results) < len(batch.requests):
            assert script.in_progress_seconds is not None
            self._schedule(batch, script.in_progress_seconds / self._steps(batch), self._process)
            return
        self._enter(batch, B.FINALIZING)
        self._schedule(batch, script.finalizing_seconds, self._complete)

    def _complete(self, batch: BatchState) -> None:
        self._write_files(batch)
        self._enter(batch, B.COMPLETED)

    def _settle_cancel(self, batch: BatchState) -> None:
        self._write_files(batch)
        self._enter(batch, B.CANCELLED)

    def _expire(self, batch: BatchState) -> None:
        if batch.status not in BATCH_EXPIRABLE:
            return
        finished = {r.custom_id for r in batch.results}
        for custom_id, _ in batch.requests:
            if custom_id not in finished:
                line = {"id": new_id("batch_req"), "custom_id": custom_id, "response": None, "error": EXPIRED_ERROR}
                batch.results.append(LineResult(custom_id, False, line))
        self._write_files(batch)
        self._enter(batch, B.EXPIRED)

    # -- effects -----------------------------------------------------------------------------------

    def _write_files(self, batch: BatchState) -> None:
        """Write the output file (successes) and the error file (failures), each only if not empty."""
        for ok, attribute, name in ((True, "output_file_id", "output"), (False, "error_file_id", "error")):
            lines = [json.dumps(r.line) for r in batch.results if r.ok is ok]
            if not lines:
                continue
            now = self._clock()
            file = FileState(
                new_id("file").replace("_", "-", 1),
                f"{batch.id}_{name}.jsonl",
                "batch_output",
                ("\n".join(lines) + "\n").encode(),
                now,
                now,
            )
            self.files[file.id] = file
            setattr(batch, attribute, file.id)

    def _enter(self, batch: BatchState, status: BatchStatus) -> None:
        """The one place a batch changes status."""
        batch.move_to(status, self._clock())
        if status in BATCH_TERMINAL:
            self._tracks.pop(batch.id).cancel_timers()
            self.log.count(f"batches_{status.value}")

    # -- timers ------------------------------------------------------------------------------------

    def _schedule(self, batch: BatchState, delay: float, move: Callable[[BatchState], None]) -> None:
        track = self._tracks[batch.id]
        if track.step is not None:
            track.step.cancel()
        track.step = self._later(delay, batch, move)

    def _later(self, delay: float, batch: BatchState, move: Callable[[BatchState], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(delay, 0.0), self._fire, batch.id, move)

    def _fire(self, batch_id: str, move: Callable[[BatchState], None]) -> None:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is not None and batch_id in self._tracks:
                move(batch)
