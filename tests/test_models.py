"""The models against the vendored OpenAI spec: its examples parse, every RunObject property is a field with
the spec's nullability, the status enum is the spec's, and requests are validated with the spec's limits."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from prefect_openai_runs.client._operations import IDEMPOTENCY_METADATA_KEY, check_id, with_idempotency_key
from prefect_openai_runs.models import (
    TERMINAL_STATUSES,
    CodeInterpreterTool,
    CreateMessageParams,
    CreateRunParams,
    CreateThreadAndRunParams,
    FileSearchTool,
    FunctionTool,
    Message,
    ModifyRunParams,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    ResponseFormatText,
    Run,
    RunStatus,
    RunStep,
    SubmitToolOutputsParams,
    Thread,
    UnknownTool,
)

SPEC_PATH = Path(__file__).parent / "spec" / "runs-subset.yaml"


@functools.cache
def schemas() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return spec["components"]["schemas"]  # type: ignore[no-any-return]


def spec_example(name: str) -> dict[str, Any]:
    example: dict[str, Any] = json.loads(schemas()[name]["x-oaiMeta"]["example"])
    return example


# -- the spec's own examples -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "model"),
    [("RunObject", Run), ("ThreadObject", Thread), ("MessageObject", Message), ("RunStepObject", RunStep)],
)
def test_spec_examples_parse(schema: str, model: type[BaseModel]) -> None:
    example = spec_example(schema)
    parsed = model.model_validate(example)
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == example


def test_run_example_details() -> None:
    run = Run.model_validate(spec_example("RunObject"))
    assert run.status is RunStatus.COMPLETED and run.status.is_terminal
    assert [type(t) for t in run.tools] == [FileSearchTool, CodeInterpreterTool]
    assert run.usage is not None and run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    assert run.response_format == "auto" and run.tool_choice == "auto"
    assert run.tool_calls == []


def test_message_example_text() -> None:
    message = Message.model_validate(spec_example("MessageObject"))
    example = spec_example("MessageObject")
    assert message.text == example["content"][0]["text"]["value"]


# -- contract: RunObject properties ----------------------------------------------------------------------


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    return schemas()[ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]


def spec_nullable(prop: dict[str, Any]) -> bool:
    """OpenAPI nullability: ``nullable: true`` (also inside ``allOf``) or an ``anyOf`` with ``null``, also via $ref."""
    if prop.get("nullable") is True:
        return True
    if any(part.get("nullable") is True for part in prop.get("allOf", [])):
        return True
    target = _resolve(prop)
    if target is not prop:
        return spec_nullable(target)
    return any(part.get("type") == "null" for part in prop.get("anyOf", []))


RUN_SCHEMA = schemas()["RunObject"]
RUN_PROPERTIES = sorted(RUN_SCHEMA["properties"])
EXAMPLE_NULLS = {key for key, value in spec_example("RunObject").items() if value is None}


def test_run_object_schema_is_what_the_contract_reads() -> None:
    assert len(RUN_PROPERTIES) >= 25 and "status" in RUN_PROPERTIES
    assert set(RUN_SCHEMA["required"]) <= set(RUN_PROPERTIES)


@pytest.mark.parametrize("name", RUN_PROPERTIES)
def test_every_run_property_is_a_field(name: str) -> None:
    assert name in Run.model_fields


@pytest.mark.parametrize("name", [n for n in RUN_PROPERTIES if spec_nullable(RUN_SCHEMA["properties"][n])])
def test_nullable_run_properties_accept_null(name: str) -> None:
    run = Run.model_validate({**spec_example("RunObject"), name: None})
    assert getattr(run, name) is None


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in RUN_PROPERTIES
        if n in RUN_SCHEMA["required"] and not spec_nullable(RUN_SCHEMA["properties"][n]) and n not in EXAMPLE_NULLS
    ],
)
def test_non_nullable_run_properties_refuse_null(name: str) -> None:
    """Required and never null in the spec (nor in its own example): ``null`` is a validation error."""
    with pytest.raises(ValidationError) as info:
        Run.model_validate({**spec_example("RunObject"), name: None})
    assert name in {str(error["loc"][0]) for error in info.value.errors()}


@pytest.mark.parametrize("name", ["id", "created_at", "thread_id", "assistant_id", "status"])
def test_identity_fields_are_required(name: str) -> None:
    example = spec_example("RunObject")
    del example[name]
    with pytest.raises(ValidationError, match=name):
        Run.model_validate(example)


# -- status ------------------------------------------------------------------------------------------


def test_status_enum_is_the_spec_enum() -> None:
    assert {s.value for s in RunStatus} == set(RUN_SCHEMA["properties"]["status"]["enum"])
    assert len(RunStatus) == 9


@pytest.mark.parametrize("status", list(RunStatus))
def test_status_helpers(status: RunStatus) -> None:
    terminal = status.value in {"cancelled", "failed", "completed", "incomplete", "expired"}
    assert status.is_terminal is terminal
    assert status.is_active is not terminal
    assert status.needs_action is (status.value == "requires_action")
    assert status.is_known and str(status) == status.value
    assert (status in TERMINAL_STATUSES) is terminal


def test_unknown_status_parses_active_never_terminal() -> None:
    run = Run.model_validate({**spec_example("RunObject"), "status": "thinking_hard"})
    assert run.status.value == "thinking_hard" and str(run.status) == "thinking_hard"
    assert not run.status.is_known
    assert run.status.is_active and not run.status.is_terminal and not run.status.needs_action
    assert run.model_dump(mode="json")["status"] == "thinking_hard"


# -- forward compatibility ------------------------------------------------------------------------------


def test_unknown_fields_are_kept_and_round_trip() -> None:
    raw = {**spec_example("RunObject"), "reasoning_summary": {"kind": "brief"}, "new_flag": True}
    run = Run.model_validate(raw)
    dumped = run.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped == raw
    assert dumped["reasoning_summary"] == {"kind": "brief"} and dumped["new_flag"] is True
    assert Run.model_validate(dumped) == run


def test_unknown_tool_type_parses_as_unknown_tool() -> None:
    tools = [{"type": "web_browser", "web_browser": {"depth": 2}}, {"type": "function", "function": {"name": "f"}}]
    run = Run.model_validate({**spec_example("RunObject"), "tools": tools})
    unknown, function = run.tools
    assert isinstance(unknown, UnknownTool) and unknown.type == "web_browser"
    assert isinstance(function, FunctionTool) and function.function.name == "f"
    assert run.model_dump(mode="json", exclude_unset=True)["tools"] == tools


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("auto", str),
        ({"type": "text"}, ResponseFormatText),
        ({"type": "json_object"}, ResponseFormatJsonObject),
        (
            {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True}},
            ResponseFormatJsonSchema,
        ),
    ],
)
def test_response_format_variants(value: Any, kind: type) -> None:
    run = Run.model_validate({**spec_example("RunObject"), "response_format": value})
    assert isinstance(run.response_format, kind)
    assert run.model_dump(mode="json", by_alias=True, exclude_unset=True)["response_format"] == value
    params = CreateRunParams(assistant_id="asst_1", response_format=value)
    assert params.to_body()["response_format"] == value


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("none", str),
        ("auto", str),
        ("required", str),
        ({"type": "function", "function": {"name": "lookup"}}, NamedToolChoice),
        ({"type": "file_search"}, NamedToolChoice),
    ],
)
def test_tool_choice_variants(value: Any, kind: type) -> None:
    run = Run.model_validate({**spec_example("RunObject"), "tool_choice": value})
    assert isinstance(run.tool_choice, kind)
    assert CreateRunParams(assistant_id="asst_1", tool_choice=value).to_body()["tool_choice"] == value


# -- request validation ----------------------------------------------------------------------------------


def fn_tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def file_search(**settings: Any) -> dict[str, Any]:
    return {"type": "file_search", "file_search": settings}


INVALID_RUN_OPTIONS = {
    "metadata_keys": ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16 keys"),
    "metadata_key_length": ({"metadata": {"k" * 65: "v"}}, "metadata", "keys are at most 64"),
    "metadata_value_length": ({"metadata": {"k": "v" * 513}}, "metadata", "values are at most 512"),
    "tools_count": ({"tools": [{"type": "code_interpreter"}] * 21}, "tools", "at most 20"),
    "function_name_space": ({"tools": [fn_tool("bad name")]}, "name", "pattern"),
    "function_name_long": ({"tools": [fn_tool("f" * 65)]}, "name", "pattern"),
    "temperature_high": ({"temperature": 2.1}, "temperature", "less than or equal to 2"),
    "temperature_low": ({"temperature": -0.1}, "temperature", "greater than or equal to 0"),
    "top_p_high": ({"top_p": 1.01}, "top_p", "less than or equal to 1"),
    "top_p_low": ({"top_p": -0.5}, "top_p", "greater than or equal to 0"),
    "max_prompt_tokens": ({"max_prompt_tokens": 255}, "max_prompt_tokens", "256"),
    "max_completion_tokens": ({"max_completion_tokens": 100}, "max_completion_tokens", "256"),
    "max_num_results_high": ({"tools": [file_search(max_num_results=51)]}, "max_num_results", "50"),
    "max_num_results_low": ({"tools": [file_search(max_num_results=0)]}, "max_num_results", "1"),
    "score_threshold_high": (
        {"tools": [file_search(ranking_options={"score_threshold": 1.5})]},
        "score_threshold",
        "less than or equal to 1",
    ),
    "score_threshold_low": (
        {"tools": [file_search(ranking_options={"score_threshold": -0.1})]},
        "score_threshold",
        "greater than or equal to 0",
    ),
    "truncation_last_messages": (
        {"truncation_strategy": {"type": "last_messages", "last_messages": 0}},
        "last_messages",
        "greater than or equal to 1",
    ),
    "unknown_field": ({"temprature": 1}, "temprature", "Extra inputs are not permitted"),
    "empty_assistant_id": ({"assistant_id": ""}, "assistant_id", "at least 1"),
    "slash_assistant_id": ({"assistant_id": "asst/../x"}, "assistant_id", "pattern"),
}


@pytest.mark.parametrize(("options", "field", "says"), INVALID_RUN_OPTIONS.values(), ids=INVALID_RUN_OPTIONS.keys())
def test_create_run_params_enforce_the_spec_limits(options: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        CreateRunParams(**{"assistant_id": "asst_1", **options})
    locations = {str(part) for error in info.value.errors() for part in error["loc"]}
    assert field in locations, info.value
    assert says in str(info.value)


@pytest.mark.parametrize(("options", "field", "says"), INVALID_RUN_OPTIONS.values(), ids=INVALID_RUN_OPTIONS.keys())
def test_thread_and_run_params_enforce_the_same_limits(options: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        CreateThreadAndRunParams(**{"assistant_id": "asst_1", **options})
    assert field in {str(part) for error in info.value.errors() for part in error["loc"]}


def test_limits_themselves_are_accepted() -> None:
    params = CreateRunParams(
        assistant_id="asst_1",
        metadata={f"{i:0>64}": "v" * 512 for i in range(16)},
        tools=[fn_tool("f" * 64)] + [{"type": "code_interpreter"}] * 18 + [file_search(max_num_results=50)],
        temperature=2,
        top_p=0,
        max_prompt_tokens=256,
        max_completion_tokens=256,
        truncation_strategy={"type": "last_messages", "last_messages": 1},
    )
    body = params.to_body()
    assert len(body["tools"]) == 20 and len(body["metadata"]) == 16
    assert "stream" not in body and "model" not in body  # only what was set


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ModifyRunParams(metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
        (lambda: CreateMessageParams(content=""), "content"),
        (lambda: CreateMessageParams(content="hi", role="system"), "role"),
        (lambda: SubmitToolOutputsParams(tool_outputs=[]), "tool_outputs"),
        (lambda: SubmitToolOutputsParams(tool_outputs=[{"tool_call_id": "a b", "output": "x"}]), "tool_call_id"),
        (lambda: ModifyRunParams(metadata={}, status="completed"), "status"),
    ],
)
def test_other_requests_are_validated(build: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert field in {str(part) for error in info.value.errors() for part in error["loc"]}


@pytest.mark.parametrize("bad", ["", "thread/abc", "thread abc", "a" * 129, None, 42])
def test_check_id_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match="thread_id"):
        check_id("thread_id", bad)


def test_check_id_accepts_ids() -> None:
    assert check_id("run_id", "run_abc-123_X") == "run_abc-123_X"


def test_idempotency_key_needs_a_free_metadata_slot() -> None:
    full = CreateRunParams(assistant_id="asst_1", metadata={f"k{i}": "v" for i in range(16)})
    with pytest.raises(ValueError, match=IDEMPOTENCY_METADATA_KEY) as info:
        with_idempotency_key(full, "key1")
    assert "metadata" in str(info.value) and "15" in str(info.value)
    fifteen = CreateRunParams(assistant_id="asst_1", metadata={f"k{i}": "v" for i in range(15)})
    tagged = with_idempotency_key(fifteen, "key1")
    assert tagged.metadata is not None and tagged.metadata[IDEMPOTENCY_METADATA_KEY] == "key1"
    assert len(tagged.metadata) == 16 and fifteen.metadata is not None and len(fifteen.metadata) == 15
