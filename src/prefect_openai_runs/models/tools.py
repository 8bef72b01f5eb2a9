"""Tools, tool choice, response format and truncation: the run configuration objects.

These models serve both directions: requests validate them strictly against the spec's limits, and a
``Run`` parses them leniently (an unknown tool type becomes :class:`UnknownTool` rather than an error).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

FUNCTION_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
"""The spec's rule for function names: letters, digits, underscores and dashes, 1 to 64 characters."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FileSearchRankingOptions(_Config):
    """How file search ranks results: the ranker and a score threshold between 0 and 1."""

    ranker: Literal["auto", "default_2024_08_21"] | None = None
    score_threshold: float = Field(ge=0, le=1)


class FileSearchSettings(_Config):
    """Overrides for the file search tool: up to 50 results and ranking options."""

    max_num_results: int | None = Field(default=None, ge=1, le=50)
    ranking_options: FileSearchRankingOptions | None = None


class FunctionDefinition(_Config):
    """A function the model may call: name, description, JSON-Schema parameters and strict mode."""

    name: str = Field(pattern=FUNCTION_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CodeInterpreterTool(_Config):
    """The code interpreter tool."""

    type: Literal["code_interpreter"] = "code_interpreter"


class FileSearchTool(_Config):
    """The file search tool, optionally with its settings."""

    type: Literal["file_search"] = "file_search"
    file_search: FileSearchSettings | None = None


class FunctionTool(_Config):
    """A function tool: the model asks the caller to run it (the run goes to ``requires_action``)."""

    type: Literal["function"] = "function"
    function: FunctionDefinition


class UnknownTool(_Config):
    """A tool type this library does not know yet; kept as the server sent it."""

    type: str


def _tool_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if isinstance(kind, str) and kind in {"code_interpreter", "file_search", "function"}:
        return kind
    return "unknown"


Tool = Annotated[
    Annotated[CodeInterpreterTool, Tag("code_interpreter")]
    | Annotated[FileSearchTool, Tag("file_search")]
    | Annotated[FunctionTool, Tag("function")]
    | Annotated[UnknownTool, Tag("unknown")],
    Discriminator(_tool_tag),
]
"""Any tool of a run, discriminated by ``type``."""

RequestTool = Annotated[
    CodeInterpreterTool | FileSearchTool | FunctionTool,
    Field(discriminator="type"),
]
"""A tool in a request: only the three types the spec defines."""


class NamedToolFunction(_Config):
    """The function a named tool choice forces."""

    name: str


class NamedToolChoice(_Config):
    """Forces one tool: ``{"type": "function", "function": {"name": ...}}`` or a built-in tool type."""

    type: Literal["function", "code_interpreter", "file_search"]
    function: NamedToolFunction | None = None


ToolChoice = Union[Literal["none", "auto", "required"], NamedToolChoice]  # noqa: UP007 - a runtime alias
"""``none``, ``auto``, ``required`` or a named tool."""


class ResponseFormatText(_Config):
    """Plain text output (the default)."""

    type: Literal["text"] = "text"


class ResponseFormatJsonObject(_Config):
    """JSON mode: the model outputs a JSON object."""

    type: Literal["json_object"] = "json_object"


class JsonSchemaFormat(_Config):
    """A named JSON Schema for structured outputs."""

    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatJsonSchema(_Config):
    """Structured outputs following a JSON Schema."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: JsonSchemaFormat


ResponseFormat = Union[  # noqa: UP007 - a runtime alias
    Literal["auto"],
    Annotated[
        ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema,
        Field(discriminator="type"),
    ],
]
"""``auto`` or one of the text / json_object / json_schema formats."""


class TruncationStrategy(_Config):
    """How the thread is truncated before the run: ``auto`` or the ``last_messages`` most recent ones."""

    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(default=None, ge=1)
