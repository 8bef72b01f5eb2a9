"""The API's operations, HTTP aside: each takes parsed input, returns the response object, raises ApiError."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from . import _errors as errors
from ._events import EventHub, Subscription
from ._machine import RunMachine
from ._objects import Assistant, Message, Thread, new_id, text_content
from ._query import list_query, page
from ._scripts import CreateContext, RunScriptBook
from ._spec import validate
from ._state import RunState
from ._store import Store

T = TypeVar("T")
JSON = dict[str, Any]


class RunsApi:
    """Assistants, threads, messages, runs and steps, with the runs API's semantics.

    Every method runs on the server's event loop, under ``lock``.

    Args:
        store: The objects.
        machine: The run scheduler.
        hub: Stream subscriptions.
        scripts: Script rules.
        lock: The emulator's lock.
        expires_after: Seconds after creation an active run expires.
    """

    def __init__(
        self,
        store: Store,
        machine: RunMachine,
        hub: EventHub,
        scripts: RunScriptBook,
        lock: threading.RLock,
        expires_after: float,
    ) -> None:
        self.store = store
        self.machine = machine
        self.hub = hub
        self.scripts = scripts
        self.expires_after = expires_after
        self._lock = lock

    # -- assistants, threads, messages ---------------------------------------------------------

    def create_assistant(self, body: Any) -> JSON:
        """POST /assistants."""
        data = validate("runs", "CreateAssistantRequest", body)
        with self._lock:
            assistant = Assistant(
                id=new_id("asst"),
                created_at=int(time.time()),
                model=data["model"],
                name=data.get("name"),
                description=data.get("description"),
                instructions=data.get("instructions"),
                tools=data.get("tools") or [],
                tool_resources=data.get("tool_resources"),
                metadata=data.get("metadata") or {},
                temperature=_given(data, "temperature", 1.0),
                top_p=_given(data, "top_p", 1.0),
                response_format=_given(data, "response_format", "auto"),
            )
            self.store.assistants[assistant.id] = assistant
            return assistant.to_api()

    def get_assistant(self, assistant_id: str) -> JSON:
        """GET /assistants/{id}."""
        with self._lock:
            return self.store.assistant(assistant_id).to_api()

    def create_thread(self, body: Any) -> JSON:
        """POST /threads."""
        data = validate("runs", "CreateThreadRequest", body)
        with self._lock:
            return self._new_thread(data).to_api()

    def get_thread(self, thread_id: str) -> JSON:
        """GET /threads/{id}."""
        with self._lock:
            return self.store.thread(thread_id).to_api()

    def delete_thread(self, thread_id: str) -> JSON:
        """DELETE /threads/{id} (a thread with an active run is kept: 400, like a message added to it)."""
        with self._lock:
            thread = self.store.thread(thread_id)
            if thread.active_run_id is not None:
                raise errors.thread_busy(thread.id, thread.active_run_id)
            del self.store.threads[thread.id]
            self.machine.log.count("threads_deleted")
            return {"id": thread.id, "object": "thread.deleted", "deleted": True}

    def create_message(self, thread_id: str, body: Any) -> JSON:
        """POST /threads/{id}/messages."""
        data = validate("runs", "CreateMessageRequest", body)
        with self._lock:
            thread = self.store.thread(thread_id)
            if thread.active_run_id is not None:
                raise errors.thread_busy_for_messages(thread.id, thread.active_run_id)
            return self._add_message(thread, data).to_api()

    def list_messages(self, thread_id: str, query: Mapping[str, str]) -> JSON:
        """GET /threads/{id}/messages (with the ``run_id`` filter)."""
        q = list_query(query)
        with self._lock:
            messages: Sequence[Message] = self.store.thread(thread_id).messages
            if q.run_id is not None:
                messages = [m for m in messages if m.run_id == q.run_id]
            return page(messages, lambda m: m.id, q, Message.to_api)

    # -- runs ----------------------------------------------------------------------------------

    def create_run(self, thread_id: str, body: Any, stream: Subscription | None = None) -> JSON:
        """POST /threads/{id}/runs."""
        data = validate("runs", "CreateRunRequest", body)
        with self._lock:
            thread = self.store.thread(thread_id)
            assistant = self.store.assistant(data["assistant_id"])
            if thread.active_run_id is not None:
                raise errors.thread_busy(thread.id, thread.active_run_id)
            for message in data.get("additional_messages") or []:
                self._add_message(thread, message)
            return self._start_run(thread, assistant, data, stream)

    def create_thread_and_run(self, body: Any, stream: Subscription | None = None) -> JSON:
        """POST /threads/runs."""
        data = validate("runs", "CreateThreadAndRunRequest", body)
        with self._lock:
            assistant = self.store.assistant(data["assistant_id"])
            thread = self._new_thread(data.get("thread") or {})
            if stream is not None:
                stream.push("thread.created", thread.to_api())
            return self._start_run(thread, assistant, data, stream)

    def list_runs(self, thread_id: str, query: Mapping[str, str]) -> JSON:
        """GET /threads/{id}/runs."""
        q = list_query(query)
        with self._lock:
            runs = [self.store.runs[i] for i in self.store.thread(thread_id).run_ids]
            return page(runs, lambda r: r.id, q, RunState.to_api)

    def get_run(self, thread_id: str, run_id: str) -> JSON:
        """GET /threads/{id}/runs/{run_id}."""
        with self._lock:
            return self.store.run(thread_id, run_id).to_api()

    def modify_run(self, thread_id: str, run_id: str, body: Any) -> JSON:
        """POST /threads/{id}/runs/{run_id}: metadata only."""
        data = validate("runs", "ModifyRunRequest", body)
        with self._lock:
            run = self.store.run(thread_id, run_id)
            if "metadata" in data:
                run.params["metadata"] = data["metadata"] or {}
            return run.to_api()

    def cancel_run(self, thread_id: str, run_id: str) -> JSON:
        """POST /threads/{id}/runs/{run_id}/cancel."""
        with self._lock:
            run = self.store.run(thread_id, run_id)
            self.machine.cancel(run)
            return run.to_api()

    def submit_tool_outputs(self, thread_id: str, run_id: str, body: Any, stream: Subscription | None = None) -> JSON:
        """POST /threads/{id}/runs/{run_id}/submit_tool_outputs."""
        data = validate("runs", "SubmitToolOutputsRunRequest", body)
        with self._lock:
            run = self.store.run(thread_id, run_id)
            outputs = [(o.get("tool_call_id", ""), o.get("output", "")) for o in data["tool_outputs"]]
            if stream is not None:
                self.hub.subscribe(run.id, stream)
            self.machine.submit_tool_outputs(run, outputs)
            return run.to_api()

    def list_steps(self, thread_id: str, run_id: str, query: Mapping[str, str]) -> JSON:
        """GET /threads/{id}/runs/{run_id}/steps."""
        q = list_query(query)
        with self._lock:
            run = self.store.run(thread_id, run_id)
            steps = self.store.steps.get(run.id, [])
            return page(steps, lambda s: s.id, q, lambda s: s.to_api())

    def get_step(self, thread_id: str, run_id: str, step_id: str) -> JSON:
        """GET /threads/{id}/runs/{run_id}/steps/{step_id}."""
        with self._lock:
            run = self.store.run(thread_id, run_id)
            return self.store.step(run, step_id).to_api()

    # -- helpers -------------------------------------------------------------------------------

    def _new_thread(self, data: Mapping[str, Any]) -> Thread:
        thread = Thread(
            id=new_id("thread"),
            created_at=int(time.time()),
            metadata=data.get("metadata") or {},
            tool_resources=data.get("tool_resources"),
        )
        self.store.threads[thread.id] = thread
        self.machine.log.count("threads_created")
        for message in data.get("messages") or []:
            self._add_message(thread, message)
        return thread

    def _add_message(self, thread: Thread, data: Mapping[str, Any]) -> Message:
        now = int(time.time())
        return self.store.add_message(
            Message(
                id=new_id("msg"),
                thread_id=thread.id,
                created_at=now,
                role=data["role"],
                content=_content(data["content"]),
                attachments=data.get("attachments") or [],
                metadata=data.get("metadata") or {},
                completed_at=now,
            )
        )

    def _start_run(
        self, thread: Thread, assistant: Assistant, data: Mapping[str, Any], stream: Subscription | None
    ) -> JSON:
        params = _run_params(assistant, data)
        script = self.scripts.choose(
            CreateContext(
                assistant_id=assistant.id,
                thread_id=thread.id,
                instructions=params["instructions"],
                metadata=dict(params["metadata"]),
                model=params["model"],
                last_user_message=thread.last_user_message(),
            )
        )
        run = RunState(
            id=new_id("run"),
            thread_id=thread.id,
            assistant_id=assistant.id,
            created_precise=time.time(),
            expires_after=self.expires_after,
            params=params,
        )
        self.store.runs[run.id] = run
        thread.run_ids.append(run.id)
        if stream is not None:
            self.hub.subscribe(run.id, stream)
        self.machine.launch(run, script)
        return run.to_api()


def _given(data: Mapping[str, Any], name: str, default: Any) -> Any:
    value = data.get(name)
    return default if value is None else value


def _run_params(assistant: Assistant, data: Mapping[str, Any]) -> JSON:
    """The request fields a run echoes, with the assistant's defaults where not given."""
    instructions = _given(data, "instructions", assistant.instructions or "")
    if data.get("additional_instructions"):
        instructions = f"{instructions}\n{data['additional_instructions']}".strip()
    truncation = data.get("truncation_strategy") or {"type": "auto"}
    return {
        "model": _given(data, "model", assistant.model),
        "instructions": instructions,
        "tools": _given(data, "tools", assistant.tools),
        "metadata": data.get("metadata") or {},
        "temperature": _given(data, "temperature", assistant.temperature),
        "top_p": _given(data, "top_p", assistant.top_p),
        "max_prompt_tokens": data.get("max_prompt_tokens"),
        "max_completion_tokens": data.get("max_completion_tokens"),
        "truncation_strategy": {"type": truncation["type"], "last_messages": truncation.get("last_messages")},
        "tool_choice": _given(data, "tool_choice", "auto"),
        "parallel_tool_calls": _given(data, "parallel_tool_calls", True),
        "response_format": _given(data, "response_format", assistant.response_format),
    }


def _content(content: str | list[JSON]) -> list[JSON]:
    """Request message content → stored content parts (text parts gain ``annotations``)."""
    if isinstance(content, str):
        return text_content(content)
    parts: list[JSON] = []
    for part in content:
        if part["type"] == "text":
            parts.extend(text_content(part["text"]))
        else:
            parts.append(dict(part))
    return parts
