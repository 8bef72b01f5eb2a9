"""Artifacts cannot be forged by text (issue 11, hole 12).

Whatever text the server or an exception gives (an error message, a reason, a tool output, a reply, a
usage label, an id), the artifact keeps its structure: the markdown is parsed back (CommonMark with
GitHub tables, as the Prefect UI renders it) and its headings, tables, fences, links and HTML are
exactly the ones the layer wrote. Pure rendering: no server involved. Derandomized for CI.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from prefect_openai_runs import StatusChange
from prefect_openai_runs._recording import (
    ArtifactExtras,
    JobView,
    ToolCallRecord,
    code,
    describe,
    fenced,
    inline,
    render_fan_out,
    render_job,
    run_view,
)
from prefect_openai_runs._recording._markdown import one_line
from prefect_openai_runs.models import Run, RunStatus

HOSTILE = [
    "# Forged heading\n## and another",
    "| forged | table |\n|---|---|\n| x | y |",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "```\n# inside a fence\n```",
    "````\n~~~\n",
    "[click me](https://evil.example) ![img](https://evil.example/x.png)",
    "**bold** _em_ ~~gone~~ `code` <!-- comment -->",
    "&lt;b&gt; &amp; \\ trailing backslash \\",
    "- a list\n1. numbered\n> quote\n---\n===",
    "    indented code\n\ttab",
]

MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _tokens(markdown: str) -> list[Any]:
    flat: list[Any] = []
    for token in MD.parse(markdown):
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def _headings(markdown: str) -> list[str]:
    tokens = MD.parse(markdown)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def _run(message: str) -> Run:
    return Run.model_validate(
        {
            "id": "run_abc",
            "created_at": 1_700_000_000,
            "thread_id": "thread_abc",
            "assistant_id": "asst_abc",
            "status": "failed",
            "model": "gpt-4o",
            "last_error": {"code": "server_error", "message": message},
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )


TIMELINE = [StatusChange(RunStatus.QUEUED, 1.7e9, 0.0), StatusChange(RunStatus.FAILED, 1.7e9 + 2, 2.0)]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_anywhere_cannot_change_the_artifact_structure(text: str) -> None:
    base = run_view(_run(text), reply=text)
    view = JobView(
        kind=base.kind,
        id=base.id,
        status=base.status,
        parent_id=base.parent_id,
        title_rows=(*base.title_rows, ("Note", text)),
        usage=((text, 1), ("total", 3)),
        sections=(*base.sections, (text, text)),
        raw_json=base.raw_json,
        error=base.error,
    )
    extra = ArtifactExtras(
        prompt=text,
        deadline_seconds=10,
        tool_calls=[ToolCallRecord(name=text, arguments=text, output=text, call_id=text)],
        flow_usage=[(text, 5), ("total", 9)],
    )

    markdown = render_job(view, TIMELINE, f"upstream failure: RuntimeError: {text}", extra)
    tokens = _tokens(markdown)

    assert _headings(markdown)[1:] == [
        "Prompt",
        "Status timeline",
        "Tool calls",
        "Token usage",
        "Reply",
        inline(text, 80),
        "Run object",
    ]
    assert not [t for t in tokens if t.type in {"html_block", "html_inline", "link_open", "image", "hr"}]
    assert [t.type for t in tokens if t.type in {"table_open", "bullet_list_open", "ordered_list_open"}] == [
        "table_open"
    ] * 3
    rows = [t for t in tokens if t.type == "tr_open"]
    cells = [t.type for t in tokens if t.type in {"th_open", "td_open", "tr_open"}]
    # a header row each; fields: 5 of the run, the note, "Followed"; timeline: 2; tool calls: 1
    assert len(rows) == (1 + 7) + (1 + 2) + (1 + 1)
    assert cells.count("th_open") + cells.count("td_open") == 2 * 8 + 4 * 3 + 4 * 2
    fences = [t.content for t in tokens if t.type == "fence"]
    assert fences[:3] == [text + "\n", text + "\n", text + "\n"]  # prompt, reply, the extra section
    assert len(fences) == 4  # and the run object


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_status_and_reason_cannot_change_the_description_or_the_summary(text: str) -> None:
    view = JobView(kind="batch", id="batch_1", status=text, usage=((text, 7),))

    description_tokens = _tokens(describe(view, text))
    summary = render_fan_out([view, view], [1.0, 2.0])

    assert [t.type for t in description_tokens if t.type.endswith("_open")] == ["paragraph_open"]
    assert not [t for t in _tokens(summary) if t.type in {"html_block", "html_inline", "link_open"}]
    assert _headings(summary) == ["OpenAI fan-out: 2 jobs", "Slowest"]


TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc")),
        st.sampled_from(list("\n\t`*_[]()<>&~|#!\\-+=.:;1 ")),
    ),
    max_size=80,
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(TEXT)
def test_inline_text_renders_as_exactly_that_text(text: str) -> None:
    tokens = MD.parse("Why: " + inline(text))

    [paragraph] = [t for t in tokens if t.type == "inline"]
    assert {c.type for c in paragraph.children or []} <= {"text"}
    assert "".join(c.content for c in paragraph.children or []) == ("Why: " + one_line(text)).strip()


@settings(derandomize=True, max_examples=300, deadline=None)
@given(TEXT)
def test_fenced_text_renders_as_exactly_that_text(text: str) -> None:
    tokens = MD.parse(fenced(text))

    assert [t.type for t in tokens] == ["fence"]
    assert tokens[0].content == text + "\n"


@settings(derandomize=True, max_examples=300, deadline=None)
@given(TEXT)
def test_code_spans_in_a_table_keep_the_table(text: str) -> None:
    tokens = _tokens("| Field | Value |\n|---|---|\n| Id | " + code(text) + " |")

    assert [t.type for t in tokens].count("td_open") == 2
    assert not [t for t in tokens if t.type in {"html_inline", "link_open"}]
