"""Background responses without a server: the models (parsing, forward compatibility, conveniences), the
create parameters' checks, the sans-IO operations driven by hand, and the mapping of their 400s."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from prefect_openai_runs.client import _responses_operations as ops
from prefect_openai_runs.client._http import Call, Reply, error_from_response
from prefect_openai_runs.client._operations import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.client._responses_stream import ResponseStreamCodec
from prefect_openai_runs.exceptions import (
    BadRequestError,
    ResponseNotCancellableError,
    StreamResumeRefusedError,
)
from prefect_openai_runs.models import (
    CreateResponseParams,
    FunctionCallItem,
    OutputItem,
    Response,
    ResponseStatus,
    ResponseStreamEvent,
)


def response_body(**fields: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1_700_000_000, "status": "queued", **fields}


def message(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "content": [part]}


# -- models ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "terminal"),
    [
        ("queued", False),
        ("in_progress", False),
        ("completed", True),
        ("failed", True),
        ("cancelled", True),
        ("incomplete", True),
    ],
)
def test_known_statuses(value: str, terminal: bool) -> None:
    status = ResponseStatus(value)
    assert status.is_known and status.is_terminal is terminal and status.is_active is not terminal


def test_unknown_status_is_active_never_terminal() -> None:
    response = Response.model_validate(response_body(status="paused"))
    assert response.status is not None and not response.status.is_known
    assert response.status.is_active and not response.is_terminal and str(response.status) == "paused"


def test_output_text_function_calls_and_unknown_items() -> None:
    body = response_body(
        status="completed",
        output=[
            {"id": "rs_1", "type": "reasoning", "summary": []},
            message("Hello, "),
            {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            message("world."),
        ],
        brand_new_field={"kept": True},
    )
    response = Response.model_validate(body)
    assert response.output_text == "Hello, world."
    assert [c.call_id for c in response.function_calls] == ["call_1"]
    assert isinstance(response.function_calls[0], FunctionCallItem)
    reasoning = response.output[0]
    assert type(reasoning) is OutputItem and reasoning.model_dump()["summary"] == []
    assert response.model_dump()["brand_new_field"] == {"kept": True}


def test_usage_details() -> None:
    usage = {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 6},
        "total_tokens": 60,
    }
    parsed = Response.model_validate(response_body(usage=usage)).usage
    assert parsed is not None and (parsed.cached_tokens, parsed.reasoning_tokens, parsed.total_tokens) == (20, 6, 60)


def test_error_and_incomplete_details() -> None:
    failed = Response.model_validate(response_body(status="failed", error={"code": "server_error", "message": "boom"}))
    assert failed.error is not None and failed.error.code == "server_error"
    assert failed.summary()["error"] == {"code": "server_error", "message": "boom"}
    cut = Response.model_validate(
        response_body(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    )
    assert cut.incomplete_details is not None and cut.incomplete_details.reason == "max_output_tokens"


def test_stream_events() -> None:
    created = ResponseStreamEvent.model_validate(
        {"type": "response.completed", "sequence_number": 9, "response": response_body(status="completed")}
    )
    assert created.is_lifecycle and created.is_terminal and created.response is not None
    delta = ResponseStreamEvent.model_validate(
        {"type": "response.output_text.delta", "sequence_number": 4, "delta": "Hi", "item_id": "msg_1"}
    )
    assert not delta.is_lifecycle and delta.response is None and delta.model_dump()["delta"] == "Hi"
    error = ResponseStreamEvent.model_validate(
        {"type": "error", "sequence_number": 2, "code": "server_error", "message": "down", "param": None}
    )
    assert error.is_error and error.error is not None and error.error.message == "down"
    assert delta.error is None


def test_a_stream_event_without_sequence_number_is_read_and_moves_no_cursor() -> None:
    codec = ResponseStreamCodec([])
    numbered = ResponseStreamEvent.model_validate({"type": "response.queued", "sequence_number": 3})
    bare = ResponseStreamEvent.model_validate({"type": "response.created", "response": response_body()})

    assert bare.sequence_number is None and bare.response is not None and bare.response.id == "resp_1"
    codec.see(bare)
    assert codec.response_id == "resp_1" and codec.last_sequence is None
    codec.see(numbered)
    codec.see(bare)
    assert codec.last_sequence == 3


# -- create parameters ------------------------------------------------------------------------------


def test_valid_params_body() -> None:
    params = CreateResponseParams(model="gpt-5", input=[{"role": "user", "content": "hi"}], background=True)
    assert params.to_body() == {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}], "background": True}


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"input": "x"}, "model"),
        ({"model": "", "input": "x"}, "model"),
        ({"model": "   ", "input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": "x", "background": True, "store": False}, "store"),
        ({"model": "m", "input": "x", "previous_response_id": "resp_1", "conversation": "conv_1"}, "not both"),
        ({"model": "m", "input": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "at most 16"),
        ({"model": "m", "input": "x", "metadata": {"k" * 65: "v"}}, "keys are at most 64"),
        ({"model": "m", "input": "x", "metadata": {"k": "v" * 513}}, "values are at most 512"),
        ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": 8}, "max_output_tokens"),
    ],
)
def test_bad_params_name_what_to_fix(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        CreateResponseParams(**fields)


def test_unknown_parameters_are_all_named() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateResponseParams(model="m", input="x", assistant_id="asst_1", max_tokens=5)  # type: ignore[call-arg]
    assert "'assistant_id', 'max_tokens'" in str(caught.value)


# -- operations, driven by hand ---------------------------------------------------------------------


def first_call(operation: Generator[Call, Reply, Any]) -> Call:
    return next(operation)


def finish(operation: Generator[Call, Reply, Any], body: Any) -> Any:
    with pytest.raises(StopIteration) as done:
        operation.send(Reply(body=body))
    return done.value.value


def test_create_is_background_tagged_and_never_resent_after_ambiguity() -> None:
    params = CreateResponseParams(model="m", input="x", metadata={"job": "a"}, stream=True)
    operation = ops.create_response(params, "key123")
    call = first_call(operation)
    assert (call.method, call.path) == ("POST", "/responses")
    assert call.json["background"] is True and "stream" not in call.json
    assert call.json["metadata"] == {"job": "a", IDEMPOTENCY_METADATA_KEY: "key123"}
    assert call.recover is None and call.retry_ambiguous is False
    assert finish(operation, response_body()).id == "resp_1"


def test_create_refuses_full_metadata_before_any_request() -> None:
    params = CreateResponseParams(model="m", input="x", metadata={f"k{i}": "v" for i in range(16)})
    with pytest.raises(ValueError, match="at most 15 keys"):
        first_call(ops.create_response(params, "key"))


def test_stream_call() -> None:
    call = ops.stream_response_call(CreateResponseParams(model="m", input="x"), "key")
    assert call.stream and call.json["stream"] is True and call.json["background"] is True
    assert call.retry_ambiguous is False and call.recover is None


def test_get_cancel_delete_paths() -> None:
    get = ops.get_response("resp_1")
    assert first_call(get) == Call("GET", "/responses/resp_1", beta=False)
    assert finish(get, response_body(status="in_progress")).status is ResponseStatus.IN_PROGRESS

    cancel = ops.cancel_response("resp_1")
    call = first_call(cancel)
    assert (call.method, call.path) == ("POST", "/responses/resp_1/cancel") and call.recover is not None
    assert finish(cancel, response_body(status="cancelled")).status is ResponseStatus.CANCELLED

    delete = ops.delete_response("resp_1")
    assert first_call(delete) == Call("DELETE", "/responses/resp_1", beta=False)
    assert finish(delete, {"id": "resp_1", "object": "response", "deleted": True}).deleted is True


@pytest.mark.parametrize(("status", "resend"), [("in_progress", True), ("cancelled", False), ("completed", False)])
def test_cancel_recovery_reads_the_response(status: str, resend: bool) -> None:
    call = first_call(ops.cancel_response("resp_1"))
    assert call.recover is not None
    recovery = call.recover()
    assert first_call(recovery) == Call("GET", "/responses/resp_1", beta=False)
    found = finish(recovery, response_body(status=status))
    assert (found is None) is resend


def test_resume_call_carries_the_cursor() -> None:
    call = ops.resume_stream_call("resp_1", 7)
    assert (call.method, call.path, call.stream) == ("GET", "/responses/resp_1", True)
    assert call.params == {"stream": "true", "starting_after": 7}
    assert ops.resume_stream_call("resp_1").params == {"stream": "true"}


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_resume_rejects_a_bad_cursor(bad: Any) -> None:
    with pytest.raises(ValueError, match="starting_after"):
        ops.resume_stream_call("resp_1", bad)


@pytest.mark.parametrize("bad", ["", "resp/1", "../x", "resp 1"])
def test_ids_are_checked_before_the_url(bad: str) -> None:
    with pytest.raises(ValueError, match="response_id"):
        first_call(ops.get_response(bad))


# -- error mapping ----------------------------------------------------------------------------------


def error(status: int, message: str) -> Exception:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    response = httpx.Response(status, json=body, request=httpx.Request("POST", "http://x/v1/responses/r/cancel"))
    return error_from_response(response, secrets=[], max_retry_after=60)


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ("Cannot cancel a completed response.", "completed"),
        ("Cannot cancel a failed response.", "failed"),
        ("Cannot cancel a response in terminal state.", None),
    ],
)
def test_not_cancellable(message: str, named: str | None) -> None:
    exc = error(400, message)
    assert isinstance(exc, ResponseNotCancellableError) and isinstance(exc, BadRequestError)
    assert exc.response_status == named


@pytest.mark.parametrize(
    ("message", "too_old"),
    [
        ("This response cannot be streamed because it was not created with background=true.", False),
        ("This response can no longer be streamed because it is more than 5 minutes old", True),
    ],
)
def test_resume_refused(message: str, too_old: bool) -> None:
    exc = error(400, message)
    assert isinstance(exc, StreamResumeRefusedError) and exc.too_old is too_old


def test_other_400_stays_plain() -> None:
    assert type(error(400, "Invalid 'input': empty.")) is BadRequestError


def test_any_400_to_a_cancel_is_not_cancellable_whatever_its_wording() -> None:
    cancel = ops.cancel_response("resp_1")
    first_call(cancel)
    refused = error(400, "This response is busy; try later.")
    assert isinstance(refused, BadRequestError) and not isinstance(refused, ResponseNotCancellableError)

    with pytest.raises(ResponseNotCancellableError, match="busy") as caught:
        cancel.throw(refused)

    assert caught.value.request_id == refused.request_id and caught.value.response_status is None
