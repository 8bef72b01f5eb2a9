"""Markdown that text cannot rewrite: escaping, fencing and shortening what comes from outside.

Every text the server or an exception gives (error messages, reasons, tool outputs, replies, usage
labels, even ids) goes through one of these before it reaches an artifact:

- :func:`inline` for running text: one line (so no block, heading, list, quote or fence can start in
  it), with every character that can open an inline construct backslash-escaped: emphasis, code,
  link, image, HTML tag, entity, strikethrough, table pipe (an underscore inside a word, as in
  ``in_progress``, cannot open emphasis and is left as it is);
- :func:`cell` for a table cell: :func:`inline`, shortened;
- :func:`code` for an id or a status shown as code: a code span longer than any backtick run inside,
  its pipes escaped (GitHub tables split cells on ``|`` even inside code);
- :func:`fenced` for a block (a reply, a tool output, JSON): a fence longer than any backtick run inside.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect_openai_runs._recording._view import ArtifactExtras, JobView, TimelineEntry

_SPECIAL = re.compile(r"([\\`*\[\]<>&~|#])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_BLOCK_START = re.compile(r"^([-+=>]|\d+[.)])")
_BACKTICKS = re.compile("`+")
_SPACES = re.compile(r"\s+")

ELLIPSIS = " [...]"
SECTION_CHARS = 2000
PROMPT_CHARS = 1000
TOOL_TEXT_CHARS = 300
SLOWEST_SHOWN = 5


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (marked ``[...]`` when cut)."""
    return text if len(text) <= limit else text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return _SPACES.sub(" ", text).strip()


def inline(text: object, limit: int | None = None) -> str:
    """Running text, on one line, with every markdown or HTML special character escaped.

    Example:
        ```python
        inline("# <b>x</b> | in_progress")  # '\\# \\<b\\>x\\</b\\> \\| in_progress'
        ```
    """
    flat = one_line(str(text))
    if limit is not None:
        flat = shorten(flat, limit)
    escaped = _SPECIAL.sub(lambda m: "\\" + m.group(0), flat)
    return _BLOCK_START.sub(r"\\\1", escaped)


def cell(text: object, limit: int = 200) -> str:
    """A table cell's text: :func:`inline`, shortened to ``limit`` characters (``-`` when empty)."""
    return inline(text, limit) or "-"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in _BACKTICKS.findall(text)), default=0)


def code(text: object, limit: int | None = 200) -> str:
    """A code span that holds ``text`` (one line) whatever backticks it contains; safe in a table."""
    flat = one_line(str(text))
    if limit is not None:
        flat = shorten(flat, limit)
    if not flat:
        return "-"
    ticks = "`" * (_longest_backtick_run(flat) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}".replace("|", "\\|")


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block that shows ``text`` as it is: its fence is longer than any backtick run inside."""
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def stamp(at: float | None) -> str:
    """A UTC timestamp with milliseconds, or ``-``."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table's lines; the header and the cells must already be escaped."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _followed(extra: ArtifactExtras, timeline: Sequence[TimelineEntry]) -> str | None:
    elapsed = (
        extra.elapsed_seconds if extra.elapsed_seconds is not None else (timeline[-1].elapsed if timeline else None)
    )
    if elapsed is None:
        return None
    if extra.deadline_seconds is None:
        return f"{elapsed:.1f} s"
    share = 100.0 * elapsed / extra.deadline_seconds if extra.deadline_seconds > 0 else 100.0
    return f"{elapsed:.1f} s of a {extra.deadline_seconds:g} s deadline ({share:.0f}%)"


def _timeline_lines(timeline: Sequence[TimelineEntry]) -> list[str]:
    rows = []
    for index, change in enumerate(timeline):
        until = timeline[index + 1].elapsed if index + 1 < len(timeline) else None
        held = f"{until - change.elapsed:.3f}" if until is not None else "-"
        rows.append((cell(change.status), stamp(change.at), f"{change.elapsed:.3f}", held))
    return table(("Status", "Seen at", "Elapsed (s)", "Time in status (s)"), rows)


def _usage_line(rows: Sequence[tuple[str, int]]) -> str:
    """``prompt 10, completion 32, total **42**``: the total (the row named so, else the last) last and in bold."""
    named = [row for row in rows if row[0] == "total"]
    total = named[-1] if named else rows[-1]
    parts = [f"{inline(label, 40)} {tokens}" for label, tokens in rows if (label, tokens) != total]
    return ", ".join([*parts, f"{inline(total[0], 40)} **{total[1]}**"])


def _usage_lines(view: JobView, flow_usage: Sequence[tuple[str, int]] | None) -> list[str]:
    lines = [_usage_line(view.usage) if view.usage else f"not reported (the {inline(view.kind)} did not end normally)"]
    if flow_usage:
        lines += ["", f"Whole flow run (every job it made, retries included): {_usage_line(flow_usage)}"]
    return lines


def render_job(
    view: JobView,
    timeline: Sequence[TimelineEntry],
    reason: str,
    extra: ArtifactExtras,
    flow_usage: Sequence[tuple[str, int]] | None = None,
) -> str:
    """A job artifact's markdown: outcome, fields, prompt, timeline, tool calls, usage, texts, raw JSON.

    Every text from outside is escaped or fenced (see the module's docstring), so none can add a
    heading, a table row, HTML or close a fence.
    """
    kind = inline(view.kind)
    lines = [
        f"# OpenAI {kind} {code(view.id)}: **{inline(view.status)}**",
        "",
        f"**Why it ended this way:** {inline(reason)}",
    ]
    if view.error:
        lines += ["", f"**Error:** {inline(view.error, SECTION_CHARS)}"]
    rows = [(cell(label), code(value)) for label, value in view.title_rows]
    followed = _followed(extra, timeline)
    if followed is not None:
        rows.append(("Followed", followed))
    lines += ["", *table(("Field", "Value"), rows)]
    if extra.prompt:
        lines += ["", "## Prompt", "", fenced(shorten(extra.prompt, PROMPT_CHARS))]
    lines += ["", "## Status timeline", "", *_timeline_lines(timeline)]
    if extra.tool_calls:
        calls = [
            (
                code(c.call_id or "-"),
                code(c.name),
                cell(c.arguments, TOOL_TEXT_CHARS),
                cell(c.output or "-", TOOL_TEXT_CHARS),
            )
            for c in extra.tool_calls
        ]
        lines += ["", "## Tool calls", "", *table(("Call", "Function", "Arguments", "Output"), calls)]
    lines += ["", "## Token usage", "", *_usage_lines(view, flow_usage if flow_usage is not None else extra.flow_usage)]
    for title, text in view.sections:
        lines += ["", f"## {inline(title, 80)}", "", fenced(shorten(text, SECTION_CHARS))]
    lines += ["", f"## {kind.capitalize()} object", "", fenced(view.raw_json, "json")]
    return "\n".join(lines)


def render_fan_out(views: Sequence[JobView], elapsed: Sequence[float | None]) -> str:
    """A fan-out's summary: how many jobs ended in each status, the tokens, the slowest jobs."""
    counts = Counter(view.status for view in views)
    tokens = sum(view.total_tokens or 0 for view in views)
    reported = sum(1 for view in views if view.total_tokens is not None)
    lines = [
        f"# OpenAI fan-out: {len(views)} jobs",
        "",
        *table(("Status", "Jobs"), [(cell(s), str(n)) for s, n in counts.most_common()]),
    ]
    lines += ["", f"**Tokens:** {tokens} in total ({reported} of {len(views)} jobs reported usage)"]
    timed = sorted(((t, v) for v, t in zip(views, elapsed, strict=True) if t is not None), key=lambda p: -p[0])
    if timed:
        rows = [
            (code(v.id), cell(v.status), f"{t:.1f}", str(v.total_tokens if v.total_tokens is not None else "-"))
            for t, v in timed[:SLOWEST_SHOWN]
        ]
        lines += ["", "## Slowest", "", *table(("Job", "Status", "Time (s)", "Tokens"), rows)]
    return "\n".join(lines)
