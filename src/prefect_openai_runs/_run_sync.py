"""Running a coroutine from synchronous code so that Prefect can still interrupt the wait.

Prefect's ``run_coro_as_sync`` blocks on a lock until the coroutine ends. Prefect interrupts a flow or
task running off the main thread (its timeout, a cancellation; also under an existing ``SIGALRM``
handler) by raising an exception into the thread, which lands only between Python instructions: never
during that blocking wait, so a flow's timeout struck only once every create or follow had ended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from prefect_openai_runs.client._sync._backend import SLICE

R = TypeVar("R")


def run_coroutine(coroutine: Coroutine[Any, Any, R]) -> R:
    """Run ``coroutine`` on an event loop of its own, in a daemon thread with this thread's context (the
    Prefect run, settings), and return its result or raise its exception. The wait is in short slices:
    an exception raised into this thread meanwhile goes on at once, while the coroutine keeps running
    (the caller decides what to do about it)."""
    result: concurrent.futures.Future[R] = concurrent.futures.Future()
    done = threading.Event()

    async def settle() -> None:
        try:
            result.set_result(await coroutine)
        except BaseException as exc:  # the coroutine's own outcome, handed to the waiting thread
            result.set_exception(exc)
        finally:
            done.set()

    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(asyncio.run, settle()), name="prefect-openai-runs-async", daemon=True
    ).start()
    while not done.wait(SLICE):
        pass
    return result.result()
