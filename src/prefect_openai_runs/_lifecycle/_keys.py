"""Idempotency keys that belong to the logical call, not the attempt.

A Prefect task or flow retried after a dropped create answer must find the job its earlier attempt
created instead of creating another. The key is derived from the task run (or the flow run) the call
is made in, which keeps its id across retries, and from the call's rank among the creates of that
attempt (so several creates in one task run keep distinct keys). Outside a Prefect run, each call gets
a fresh random key.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import Counter

from prefect.context import FlowRunContext, TaskRunContext

_ranks: Counter[tuple[str, int, str]] = Counter()
_lock = threading.Lock()


def logical_key(purpose: str) -> str:
    """A 32-hex-character idempotency key, the same in every attempt of the same logical call.

    Args:
        purpose: What the key is for (``"run"``, ``"response"``, ``"batch"``): different creates of one
            call never share a key.
    """
    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        basis, attempt = f"task-run:{task_ctx.task_run.id}", task_ctx.task_run.run_count
    else:
        flow_ctx = FlowRunContext.get()
        if flow_ctx is None or flow_ctx.flow_run is None:
            return uuid.uuid4().hex
        basis, attempt = f"flow-run:{flow_ctx.flow_run.id}", flow_ctx.flow_run.run_count
    with _lock:
        _ranks[(basis, attempt, purpose)] += 1
        rank = _ranks[(basis, attempt, purpose)]
    return hashlib.sha256(f"{basis}:{purpose}:{rank}".encode()).hexdigest()[:32]


def derived_key(prefix: str, index: int, purpose: str = "run") -> str:
    """A 32-hex-character idempotency key for the ``index``-th create under ``prefix``, whatever flow run
    makes it (a fleet fan-out re-running a lost chunk on a new flow run finds the runs already created)."""
    return hashlib.sha256(f"{prefix}:{purpose}:{index}".encode()).hexdigest()[:32]
